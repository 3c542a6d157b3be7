"""The train stage as a process: killed with SIGKILL, rerun, it resumes and ends where an
uninterrupted run ends, bit for bit, in the same MLflow run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from mlflow.tracking import MlflowClient

from sagan.config import config_from_dict as load_config_from
from sagan.precision import resolve_precision
from tests.conftest import tiny_config

pytestmark = pytest.mark.pipeline

REPO = Path(__file__).resolve().parents[1]
STEPS = 24


@pytest.fixture
def workspace(prepared_data: Path):
    """``workspace(root, **model)``: tiny params and prepared data, as `dvc repro` leaves them."""

    def make(root: Path, **model) -> Path:
        return _workspace(root, prepared_data, **model)

    return make


def _workspace(root: Path, prepared: Path, **model) -> Path:
    root.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    data = tiny_config().data  # the params prepared_data was made with
    params["data"].update(
        num_train=data.num_train,
        num_test=data.num_test,
        image_size=data.image_size,
        images_per_shard=data.images_per_shard,
    )
    assert load_config_from(params).data == data
    params["model"].update(latent_dim=16, g_width=8, d_width=8, **model)
    params["train"].update(
        batch_size=8,
        steps=STEPS,
        checkpoint_every=4,
        log_every=4,
        sample_every=12,
        deterministic=True,
    )
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(prepared, root / "data" / "prepared")
    return root


def _train(cwd: Path) -> subprocess.Popen:
    environment = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    environment["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _checkpoint_steps(cwd: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in cwd.glob("checkpoints/*/ckpt-*.index"))


def _generator_weights(cwd: Path) -> list[np.ndarray]:
    import sagan.model.layers  # noqa: F401  (registers the custom layers)

    model = keras.models.load_model(cwd / "models" / "generator.keras", safe_mode=True)
    return [w.numpy() for w in model.weights]


def test_a_killed_train_stage_resumes_to_the_same_weights(tmp_path, workspace):
    straight = workspace(tmp_path / "straight")
    killed = workspace(tmp_path / "killed")

    process = _train(killed)
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

    resumed = _train(killed)
    log = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, log
    assert f"resumed from checkpoints/{Path(newest).parent.name}/{Path(newest).name}\n" in log
    reference = _train(straight)
    assert reference.wait(timeout=300) == 0, reference.stdout.read()

    for a, b in zip(_generator_weights(straight), _generator_weights(killed), strict=True):
        np.testing.assert_array_equal(a, b)

    client = MlflowClient(f"sqlite:///{killed / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sagan").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the killed run was resumed
    resolved = resolve_precision("auto")
    assert runs[0].data.params["train.mixed_precision"] == "auto"
    assert runs[0].data.params["train.mixed_precision_resolved"] == resolved.policy
    assert f"precision: {resolved.reason}" in log
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "g_loss")]
    assert steps[-1] == STEPS


def test_a_conditional_train_stage_checks_the_names_and_saves_its_attributes(tmp_path, workspace):
    unknown = workspace(tmp_path / "unknown", conditional=True, condition_on=["glasses", "blond"])
    process = _train(unknown)
    log = process.communicate(timeout=300)[0]
    assert process.returncode == 1, log
    assert "model.condition_on: unknown attribute 'blond'; the prepared data's attributes " in log
    assert "skin_tone, face_shape, hair_colour" in log and "Traceback" not in log
    assert not (unknown / "mlflow.db").exists() and not (unknown / "checkpoints").exists()

    root = workspace(tmp_path / "conditional", conditional=True, condition_on=["glasses"])
    (root / "params.yaml").write_text(
        (root / "params.yaml").read_text().replace(f"steps: {STEPS}", "steps: 2")
    )
    process = _train(root)
    log = process.communicate(timeout=300)[0]
    assert process.returncode == 0, log
    attributes = json.loads((root / "models" / "attributes.json").read_text())
    assert attributes["names"] == ["glasses"] and attributes["classes"] == [2]
    assert sum(attributes["counts"]) == 64
    import sagan.model.layers  # noqa: F401  (registers the custom layers)

    generator = keras.models.load_model(root / "models" / "generator.keras", safe_mode=True)
    assert [x.name for x in generator.inputs] == ["z", "attributes"]
