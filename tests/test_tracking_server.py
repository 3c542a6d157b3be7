"""The pipeline against a real MLflow tracking server over HTTP (`mlflow server`, a SQLite
backend, served artifacts), as a team shares one: the whole run lands on the server and
nothing beside the repository, the registered generator draws faces through it, a server
lost mid-run ends train with one line and a rerun resumes into the same run, and a wrong or
silent server is refused before training starts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.projects import environment
from tests.test_end_to_end import (
    _draw_from_best,
    _free_port,
    _tiny_repo,
    _wait_until_answering,
    check_experiment_run,
)

pytestmark = pytest.mark.pipeline

STEPS, LOG_EVERY = 200, 2
# Long enough that the server dies while train runs, with a checkpoint every 10 updates and
# two evaluations (the e2e test's every 2 would make it minutes).
LONG_TRAIN = {
    "train": {
        "steps": STEPS,
        "log_every": LOG_EVERY,
        "checkpoint_every": 10,
        "sample_every": 100,
        "eval_every": 100,
    }
}
WAIT = 180  # seconds: a checkpoint's appearance, a stage's end


def _environment(tracking_uri: str) -> dict[str, str]:
    return {
        **environment(),
        "MLFLOW_TRACKING_URI": tracking_uri,
        # MLflow's own retries wait minutes for a server that is gone; the test, seconds.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }


def _repro(repo: Path, tracking_uri: str, *targets: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["dvc", "repro", *targets],
        cwd=repo,
        env=_environment(tracking_uri),
        capture_output=True,
        text=True,
        timeout=900,
    )


def _stage_errors(output: str) -> list[str]:
    """Our stages' error lines (DVC adds its own "failed to reproduce" line)."""
    return re.findall(r"^ERROR stages\.\w+: .*$", output, flags=re.MULTILINE)


@contextlib.contextmanager
def _mlflow_server(root: Path, port: int):
    """`mlflow server` on 127.0.0.1:port, its store and artifacts under ``root``; stopped
    (the whole process group) on leaving."""
    command = [
        *("mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *("--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"),
        *("--artifacts-destination", str(root / "artifacts"), "--serve-artifacts"),
    ]
    log = (root / "server.log").open("a")
    server = subprocess.Popen(
        command,
        cwd=root,
        env=_environment(""),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        health = f"http://127.0.0.1:{port}/health"
        _wait_until_answering(server, health, (root / "server.log").read_text)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=60)
        log.close()


def _checkpoint_files(repo: Path) -> set[Path]:
    """The whole checkpoints' index files (TensorFlow writes each under a temporary name)."""
    return set(repo.glob("checkpoints/*/ckpt-*.index"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory, session_folder) -> Path:
    """The tiny project with a longer train, its stages before train run (they log nothing)."""
    root = tmp_path_factory.mktemp("server") / "repo"
    return _tiny_repo(root, session_folder, LONG_TRAIN, repro=False)


def test_a_wrong_or_silent_server_is_refused_before_training(repo):
    checkpoints = _checkpoint_files(repo)
    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent_uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        wrong_uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
        for uri in (wrong_uri, silent_uri):
            result = _repro(repo, uri, "train")
            output = result.stdout + result.stderr
            assert result.returncode != 0, output
            (error,) = _stage_errors(output)
            assert f"the MLflow server {uri} does not answer" in error, output
            assert "Traceback" not in output
            assert _checkpoint_files(repo) == checkpoints, "training started"
    assert not (repo / "mlflow.db").exists()


def test_the_pipeline_reports_to_a_server_and_survives_losing_it(repo, tmp_path):
    store = tmp_path / "server"
    store.mkdir()
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"

    # The server dies while train runs: one line that names it, and every checkpoint kept.
    with _mlflow_server(store, port):
        repro = subprocess.Popen(
            ["dvc", "repro", "train"],
            cwd=repo,
            env=_environment(uri),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + WAIT
        while not _checkpoint_files(repo):
            assert repro.poll() is None and time.monotonic() < deadline, repro.stdout.read()
            time.sleep(0.05)
        kept = _checkpoint_files(repo)
    output = repro.communicate(timeout=WAIT)[0]
    assert repro.returncode != 0, output
    (error,) = _stage_errors(output)
    assert error.startswith(f"ERROR stages.train: lost the MLflow store {uri} ("), output
    assert "rerun the stage to resume" in error and "Traceback" not in output
    assert kept <= _checkpoint_files(repo)

    # Back on the same store, a rerun resumes from the checkpoints into the same run.
    with _mlflow_server(store, port):
        result = _repro(repo, uri)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "resumed from checkpoints/" in result.stderr

        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("sagan")
        (run,) = client.search_runs([experiment.experiment_id])
        recorded = json.loads((repo / "models" / "mlflow_run.json").read_text())
        assert run.info.run_id == recorded["run_id"] and run.info.status == "FINISHED"
        assert run.data.params["train.steps"] == str(STEPS)
        logged = {m.step for m in client.get_metric_history(run.info.run_id, "train/d_loss")}
        assert logged == set(range(LOG_EVERY, STEPS + 1, LOG_EVERY))  # none missing
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/fid")] == [
            100,
            200,
        ]
        assert client.list_artifacts(run.info.run_id, "samples")
        generated = [a.path for a in client.list_artifacts(run.info.run_id, "generate")]
        assert "generate/grid.png" in generated
        assert client.get_logged_model(recorded["model_id"]).source_run_id == run.info.run_id
        best = client.get_model_version_by_alias("sagan-generator", "best")
        assert best.run_id == run.info.run_id
        assert _draw_from_best(uri, tmp_path) == "(3, 32, 32, 3) uint8 True"

        # An experiment on the cached model: a run of its own on the server, under this one.
        subprocess.run(
            ["dvc", "exp", "run", "-n", "seed-one", "-S", "generate.seed=1"],
            cwd=repo,
            env=_environment(uri),
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
        )
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        check_experiment_run(client, run.info.run_id, "seed-one", commit)

    # Everything went to the server: no store of its own beside the repository.
    assert not (repo / "mlflow.db").exists() and not (repo / "mlruns").exists()
    assert (store / "mlflow.db").is_file() and any((store / "artifacts").rglob("*.png"))
