"""Concurrent runs against one workspace and one SQLite tracking store.

Two queued experiments executed side by side must each land whole in MLflow, under their
own params and with their own metrics; a second `dvc repro` must bounce off DVC's lock.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sagan.config import Config
from tests.projects import run
from tests.reliability.helpers import start

STORE_LOCKED = ("database is locked", "already exists", "Online migration")


def _open_and_log(root: str, worker: int) -> str:
    """One pipeline's worth of tracking calls, in a fresh process; the error text or 'ok'."""
    os.chdir(root)
    # mlflow.set_tracking_uri in an earlier test exports it, and spawned workers inherit it.
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from sagan.tracking import start_run

    try:
        tracker = start_run(Config(), {"worker": str(worker)})
        for step in range(20):
            tracker.log_metrics({"value": worker, "step_seen": step}, step)
        tracker.finish()
    except Exception as error:  # noqa: BLE001  (the test reports whatever went wrong)
        return f"{type(error).__name__}: {error}"
    return "ok"


def test_processes_opening_a_fresh_store_at_once_all_succeed(tmp_path):
    # Without the store lock in sagan.tracking this fails nearly every time: each process
    # runs MLflow's schema migrations ("table latest_metrics already exists").
    workers = 4
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        outcomes = pool.starmap(_open_and_log, [(str(tmp_path), w) for w in range(workers)])
    assert outcomes == ["ok"] * workers

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sagan").experiment_id])
    assert sorted(run.data.tags["worker"] for run in runs) == [str(w) for w in range(workers)]
    for record in runs:
        assert record.info.status == "FINISHED"
        history = client.get_metric_history(record.info.run_id, "value")
        assert {m.value for m in history} == {float(record.data.tags["worker"])}
        assert len(history) == 20


def _experiments(repo: Path) -> dict[str, dict]:
    """Experiment name -> {"d_lr", "train", "eval"} from `dvc exp show`."""
    shown = json.loads(run("dvc", "exp", "show", "--json", cwd=repo).stdout)
    found = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            data = experiment["revs"][0]["data"]
            found[experiment["name"]] = {
                "d_lr": data["params"]["params.yaml"]["data"]["train"]["d_lr"],
                "train": data["metrics"]["metrics/train.json"]["data"],
                "eval": data["metrics"]["metrics/eval.json"]["data"],
            }
    return found


@pytest.mark.pipeline
def test_two_queued_experiments_run_side_by_side_are_recorded_whole(tiny_repo):
    # The stages that do not track have run, so the two experiments reach train together,
    # against a store that does not exist yet: the worst case for SQLite.
    repo = tiny_repo(prepared=True)
    assert not (repo / "mlflow.db").exists()
    for d_lr in ("0.0002", "0.0003"):
        run("dvc", "exp", "run", "--queue", "-S", f"train.d_lr={d_lr}", cwd=repo)
    run("dvc", "queue", "start", "-j", "2", cwd=repo)
    deadline = time.monotonic() + 600
    while "Queued" in (status := run("dvc", "queue", "status", cwd=repo).stdout) or (
        "Running" in status
    ):
        assert time.monotonic() < deadline, status
        time.sleep(2)
    logs = "".join(
        run("dvc", "queue", "logs", line.split()[0], cwd=repo, check=False).stdout
        for line in status.splitlines()[1:]
        if line.split() and line.split()[-1] in {"Success", "Failed"}
    )
    assert status.count("Success") == 2, f"{status}\n{logs[-4000:]}"
    assert not [text for text in STORE_LOCKED if text in logs], logs[-4000:]
    # Each ran in a temporary copy under .dvc/tmp/exps, and reported to the repository's store.
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))

    experiments = _experiments(repo)
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sagan").experiment_id])
    assert len(runs) == 2
    for record in runs:
        shown = experiments[record.data.tags["dvc_exp_name"]]
        assert record.info.status == "FINISHED" and record.data.tags.get("git_commit")
        assert float(record.data.params["train.d_lr"]) == shown["d_lr"]
        # The run holds its own experiment's numbers, not the other's.
        assert record.data.metrics["train/d_loss"] == pytest.approx(shown["train"]["d_loss"])
        assert record.data.metrics["eval/fid"] == pytest.approx(shown["eval"]["fid"])
        steps = [m.step for m in client.get_metric_history(record.info.run_id, "train/d_loss")]
        assert steps == sorted(set(steps)) and steps[-1] == shown["train"]["steps"]
    assert {r.data.params["train.d_lr"] for r in runs} == {"0.0002", "0.0003"}


@pytest.mark.pipeline
def test_a_second_repro_in_the_same_workspace_fails_on_dvcs_lock(tiny_repo):
    repo = tiny_repo()
    first = start("dvc", "repro", "prepare", cwd=repo)
    # Wait until the first holds the lock (it is running a stage), then start the second.
    deadline = time.monotonic() + 120
    while not (repo / "data").exists():
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    second = run("dvc", "repro", cwd=repo, check=False)
    first_log = first.communicate(timeout=600)[0]

    assert second.returncode != 0
    # DVC names the output the first holds and the process that holds it.
    assert "is busy, it is being blocked by" in second.stderr, second.stderr
    assert f"PID {first.pid}" in second.stderr, second.stderr
    assert first.returncode == 0, first_log
    status = json.loads(run("dvc", "status", "--json", "prepare", cwd=repo).stdout)
    assert status == {}  # the first run's output and lock entry are whole
    run("dvc", "repro", "prepare", cwd=repo)  # and a third finds nothing to do
