"""Crashes and interruptions: SIGKILL in every stage of a real `dvc repro`, SIGKILL inside an
atomic write, and Ctrl-C in train.

After each kill the outputs on disk are whole or absent and no temporary is published; the
next `dvc repro` completes, train resumes from its newest checkpoint, and the MLflow store
ends with the one pipeline run, FINISHED: a killed run is reopened and resumed, never left
RUNNING beside a new one.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from sagan.files import TEMPORARY_PREFIX, sha256
from tests.helpers import REPO
from tests.projects import edit_params, run
from tests.reliability.helpers import start

pytestmark = pytest.mark.pipeline  # every test here runs dvc

STAGES = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
# Once this appears, the stage is writing its output: the kill lands within the next
# KILL_WINDOW seconds. Stages without a marker write in a blink at their very end; they are
# killed within STARTUP_WINDOW seconds of starting, while they load TensorFlow and compute.
WRITING = {
    "prepare": f"data/{TEMPORARY_PREFIX}prepared.*/*",
    "train": "checkpoints/*/ckpt-*.index",
    "generate": f"{TEMPORARY_PREFIX}samples.*/images/*.png",
    "encoder": f"{TEMPORARY_PREFIX}encoder.*",
}
KILL_WINDOW = 0.5
STARTUP_WINDOW = (0.5, 4.0)
OUTPUT_ROOTS = ("data", "models", "checkpoints", "metrics", "plots", "samples", "encoder")
RUNNING = re.compile(r"Running stage '(\w+)'")


class Repro:
    """`dvc repro` in its own session, so that SIGKILL takes the stage's process with it."""

    def __init__(self, repo: Path):
        self.lines: list[str] = []
        self.process = start("dvc", "repro", cwd=repo, new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def stage(self) -> str | None:
        """The stage running now (the last one DVC announced)."""
        started = [m.group(1) for line in self.lines if (m := RUNNING.search(line))]
        return started[-1] if started else None

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.reader.join()

    def log(self) -> str:
        self.process.wait()
        self.reader.join()
        return "".join(self.lines)


def _kill_in_a_new_stage(repo: Path, killed: set[str], rng: random.Random) -> tuple[str, str]:
    """Run `dvc repro`, SIGKILL it in the first stage not killed yet: (that stage, the log).

    The stage is "" when the repro finished before reaching a stage to kill.
    """
    repro = Repro(repo)
    deadline = time.monotonic() + 300
    while (stage := repro.stage()) in killed or stage is None:
        if repro.process.poll() is not None:
            log = repro.log()
            assert repro.process.returncode == 0, log
            return "", log
        assert time.monotonic() < deadline, "".join(repro.lines)
        time.sleep(0.02)
    marker = WRITING.get(stage)
    if marker is None:
        time.sleep(rng.uniform(*STARTUP_WINDOW))
    else:
        while not list(repo.glob(marker)) and repro.process.poll() is None:
            assert time.monotonic() < deadline, "".join(repro.lines)
            time.sleep(0.01)
        time.sleep(rng.uniform(0, KILL_WINDOW))
    landed = repro.stage()
    repro.kill()
    return landed, repro.log()


def _assert_outputs_whole(repo: Path) -> None:
    """Every output on disk is complete: shards match the manifest, files parse."""
    prepared = repo / "data" / "prepared"
    if prepared.exists():
        manifest = json.loads((prepared / "manifest.json").read_text())
        for split in manifest["splits"].values():
            for shard in split["shards"]:
                assert sha256(prepared / shard["file"]) == shard["sha256"], shard
        assert not list(prepared.glob("*.partial"))
    for archive in [*repo.glob("models/*.keras"), *repo.glob("encoder/*.keras")]:
        with zipfile.ZipFile(archive) as model:
            assert model.testzip() is None, archive
    for metrics in repo.glob("metrics/*.json"):
        json.loads(metrics.read_text())
    if (repo / "samples").exists():
        assert (repo / "samples" / "interpolation.png").is_file()
    for reference in repo.glob("data/reference/*.npz"):
        with np.load(reference) as arrays:
            assert arrays.files
    for state in repo.glob("checkpoints/*/checkpoint"):
        latest = re.search(r'^model_checkpoint_path: "(.+)"', state.read_text(), re.M).group(1)
        assert (state.parent / f"{latest}.index").is_file(), state


def _newest_checkpoint(repo: Path) -> str | None:
    states = list(repo.glob("checkpoints/*/checkpoint"))
    if not states:
        return None
    return re.search(r'^model_checkpoint_path: "(.+)"', states[0].read_text(), re.M).group(1)


def _hidden(repo: Path) -> list[Path]:
    """Files and folders under the outputs whose names start with "." (.gitignore aside)."""
    found = [path for root in OUTPUT_ROOTS for path in (repo / root).rglob(".*")]
    return [path for path in found if path.name != ".gitignore"]


def _leftovers(repo: Path) -> list[Path]:
    """Hidden temporaries of atomic writes, in or beside any output."""
    return list(repo.glob(f"{TEMPORARY_PREFIX}*")) + _hidden(repo)


@pytest.mark.parametrize(
    "seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]
)
def test_sigkill_in_every_stage_then_repro_completes(tiny_repo, seed):
    repo = tiny_repo()
    rng = random.Random(seed)
    killed: set[str] = set()
    logs, resumed_from = [], None
    for _ in range(2 * len(STAGES)):
        landed, log = _kill_in_a_new_stage(repo, killed, rng)
        logs.append(log)
        if not landed:
            break
        killed.add(landed)
        _assert_outputs_whole(repo)
        if landed == "train":
            resumed_from = _newest_checkpoint(repo)
    else:
        pytest.fail(f"the pipeline never completed; killed in {sorted(killed)}")
    assert killed == STAGES, f"stages never killed: {STAGES - killed}"
    assert run("dvc", "status", "--json", cwd=repo).stdout.strip() == "{}"
    assert not _leftovers(repo), _leftovers(repo)
    _assert_outputs_whole(repo)
    assert json.loads((repo / "metrics" / "train.json").read_text())["steps"] == 12
    if resumed_from is not None:  # killed after its first checkpoint: it must not restart
        name = Path(resumed_from).name
        assert any(re.search(rf"resumed from \S*/{name}\b", log) for log in logs), logs

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    (record,) = client.search_runs([client.get_experiment_by_name("sagan").experiment_id])
    assert record.info.status == "FINISHED"
    # Steps between the newest checkpoint and the kill are logged twice; none is missing.
    steps = [m.step for m in client.get_metric_history(record.info.run_id, "train/d_loss")]
    assert sorted(set(steps)) == [2, 4, 6, 8, 10, 12]
    assert "eval/fid" in record.data.metrics


# A sitecustomize.py, which every Python process of the run imports first: a process dies
# when it renames an attention snapshot's temporary, i.e. once that file is written in full
# and before it takes its name. Unswept, the resumed run published it into plots/train.
KILL_BEFORE_SNAPSHOT_RENAME = """
import os
import signal

_replace = os.replace


def _replace_or_die(source, destination, *args, **kwargs):
    name = os.path.basename(os.fspath(source))
    if name.endswith(".npz") and "step_" in name:
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(source, destination, *args, **kwargs)


os.replace = _replace_or_die
"""


def test_sigkill_inside_a_snapshot_write_publishes_no_temporary(tiny_repo, tmp_path):
    repo = tiny_repo(prepared=True)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_BEFORE_SNAPSHOT_RENAME)
    killed = run("dvc", "repro", "train", cwd=repo, check=False, first_on_path=hook)
    assert killed.returncode != 0, killed.stdout + killed.stderr
    # The kill landed in the window: the first snapshot (step 6) is whole, under its temporary name.
    (temporary,) = repo.glob("checkpoints/*/plots/attention/*")
    assert temporary.name.startswith(".") and "step_000006" in temporary.name, temporary
    with np.load(temporary) as arrays:
        assert arrays.files

    # Up to attention, the reader of the snapshots: the later stages have no part in this.
    run("dvc", "repro", "attention", cwd=repo)
    assert not _hidden(repo), _hidden(repo)
    status = run("dvc", "status", "--with-deps", "--json", "attention", cwd=repo)
    assert status.stdout.strip() == "{}", status.stdout
    snapshots = sorted(path.name for path in (repo / "plots" / "train" / "attention").iterdir())
    assert snapshots == ["step_000006.npz", "step_000012.npz"]


def test_ctrl_c_during_training_saves_a_checkpoint_and_marks_the_run(tiny_repo):
    # No periodic checkpoint: the only one before the end is the one Ctrl-C saves.
    repo = tiny_repo(changes={"train": {"steps": 2000, "checkpoint_every": 5000}}, prepared=True)
    repro = start("dvc", "repro", "train", cwd=repo, new_session=True)
    deadline = time.monotonic() + 300
    while not list(repo.glob("checkpoints/*/plots/samples/*.png")):  # the loop is running
        assert repro.poll() is None and time.monotonic() < deadline, repro.stdout.read()
        time.sleep(0.05)
    os.killpg(repro.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the whole group
    log = repro.communicate(timeout=120)[0]

    assert repro.returncode != 0, log
    saved = re.search(r"interrupted: saving a checkpoint at step (\d+)", log)
    assert saved, log
    assert "Traceback" not in log and "rerun the stage to resume" in log
    step = int(saved.group(1))
    assert _newest_checkpoint(repo) == f"ckpt-{step}"
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    (record,) = client.search_runs([client.get_experiment_by_name("sagan").experiment_id])
    assert record.info.status == "KILLED"

    edit_params(repo, {"train": {"steps": step + 2}})  # the budget is no part of the fingerprint
    resumed = run("dvc", "repro", "train", cwd=repo)
    assert "resumed from checkpoints/" in resumed.stderr and f"ckpt-{step}" in resumed.stderr
    (record,) = client.search_runs([client.get_experiment_by_name("sagan").experiment_id])
    assert record.info.status == "FINISHED"
