"""The train stage as a process: killed with SIGKILL, rerun, it resumes and ends where an
uninterrupted run ends, bit for bit, in the same MLflow run."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from sagan.hardware import resolve_precision
from sagan.training.perceptual import VGG19_WEIGHTS_URL
from tests.helpers import real_hardware, stage_workspace, start_stage

pytestmark = pytest.mark.pipeline

STEPS = 24


@pytest.fixture
def workspace(prepared_data: Path):
    """``workspace(root, **model)``: tiny params and prepared data, as `dvc repro` leaves them."""

    def make(root: Path, train: dict | None = None, **model) -> Path:
        train = {"steps": STEPS, **(train or {})}
        return stage_workspace(root, prepared_data, model=model, train=train)

    return make


def _checkpoint_steps(cwd: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in cwd.glob("checkpoints/*/ckpt-*.index"))


def _generator_weights(cwd: Path) -> list[np.ndarray]:
    import sagan.model.layers  # noqa: F401  (registers the custom layers)

    model = keras.models.load_model(cwd / "models" / "generator.keras", safe_mode=True)
    return [w.numpy() for w in model.weights]


def test_a_killed_train_stage_resumes_to_the_same_weights(tmp_path, workspace):
    """With XLA (``jit_compile: true``): its compiled step repeats bit for bit across
    processes too. (The tiny pipeline trains without it, tests/test_end_to_end.py.)"""
    straight = workspace(tmp_path / "straight", train={"jit_compile": True})
    killed = workspace(tmp_path / "killed", train={"jit_compile": True})

    process = start_stage(killed)
    deadline = time.monotonic() + 300
    while not [step for step in _checkpoint_steps(killed) if 8 <= step < STEPS]:
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint appeared in time"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # The newest whole checkpoint: the state file may not yet name one whose files exist.
    newest = tf.train.latest_checkpoint(str(next(killed.glob("checkpoints/*"))))
    assert int(newest.rsplit("-", 1)[1]) < STEPS

    resumed = start_stage(killed)
    log = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, log
    assert f"resumed from checkpoints/{Path(newest).parent.name}/{Path(newest).name}\n" in log
    reference = start_stage(straight)
    assert reference.wait(timeout=300) == 0, reference.stdout.read()

    for a, b in zip(_generator_weights(straight), _generator_weights(killed), strict=True):
        np.testing.assert_array_equal(a, b)

    client = MlflowClient(f"sqlite:///{killed / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sagan").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the killed run was resumed
    resolved = resolve_precision("auto", real_hardware())  # the stage probed this machine
    assert runs[0].data.params["train.mixed_precision"] == "auto"
    assert runs[0].data.params["train.mixed_precision_resolved"] == resolved.policy
    assert f"precision: {resolved.reason}" in log
    assert runs[0].data.params["train.jit_compile"] == "True"
    assert runs[0].data.params["train.jit_compile_resolved"] == "True"
    assert "XLA: train.jit_compile: true (as set)" in log
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "train/g_loss")]
    assert steps[-1] == STEPS


def test_a_conditional_train_stage_checks_the_names_and_saves_its_attributes(tmp_path, workspace):
    unknown = workspace(
        tmp_path / "unknown", conditional=True, pack=1, condition_on=["glasses", "blond"]
    )
    process = start_stage(unknown)
    log = process.communicate(timeout=300)[0]
    assert process.returncode == 1, log
    assert "model.condition_on: unknown attribute 'blond'; the prepared data's attributes " in log
    assert "skin_tone, face_shape, hair_colour" in log and "Traceback" not in log
    assert not (unknown / "mlflow.db").exists() and not (unknown / "checkpoints").exists()

    root = workspace(tmp_path / "conditional", conditional=True, pack=1, condition_on=["glasses"])
    (root / "params.yaml").write_text(
        (root / "params.yaml").read_text().replace(f"steps: {STEPS}", "steps: 2")
    )
    process = start_stage(root)
    log = process.communicate(timeout=300)[0]
    assert process.returncode == 0, log
    attributes = json.loads((root / "models" / "attributes.json").read_text())
    assert attributes["names"] == ["glasses"] and attributes["classes"] == [2]
    assert sum(attributes["counts"]) == 64
    import sagan.model.layers  # noqa: F401  (registers the custom layers)

    generator = keras.models.load_model(root / "models" / "generator.keras", safe_mode=True)
    assert [x.name for x in generator.inputs] == ["z", "attributes"]


def test_offline_without_vgg19_weights_the_stage_stops_before_any_run_or_checkpoint(
    tmp_path, prepared_data
):
    root = stage_workspace(
        tmp_path / "offline", prepared_data, train={"steps": 2, "perceptual_weight": 1.0}
    )
    # The network mocked by the environment: an empty Keras cache, and every HTTPS request
    # sent to a proxy port where nothing listens.
    offline = {
        "KERAS_HOME": str(tmp_path / "keras"),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    process = start_stage(root, environment=offline)
    log = process.communicate(timeout=300)[0]
    assert process.returncode == 1, log
    errors = [line for line in log.splitlines() if "train.perceptual_weights" in line]
    assert len(errors) == 1 and VGG19_WEIGHTS_URL in errors[0], log
    assert "Traceback" not in log
    assert not (root / "mlflow.db").exists() and not (root / "checkpoints").exists()
    assert not (root / "models").exists()


def test_a_growth_schedule_too_long_for_the_epochs_budget_stops_before_any_run(
    tmp_path, prepared_data
):
    # 64 training images in batches of 8: one epoch is 8 updates, 3 of them at 16px.
    growth = {"progressive": [16, 32], "progressive_steps": [3], "progressive_fade": 5}
    root = stage_workspace(tmp_path / "grown", prepared_data, train={"epochs": 1.0, **growth})
    process = start_stage(root)
    log = process.communicate(timeout=300)[0]
    assert process.returncode == 1, log
    assert "train.progressive_steps ([3], 3 updates) leave 5 of the 8 updates" in log, log
    assert "Traceback" not in log
    assert not (root / "mlflow.db").exists() and not (root / "checkpoints").exists()
