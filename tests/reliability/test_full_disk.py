"""A full disk, simulated by a small tmpfs (skipped where mounting is not permitted).

A real filesystem that runs out of space, not a mock: ENOSPC comes from the kernel at
whatever write hits it. What must hold: a clear error, and what was written before intact.
"""

from __future__ import annotations

import dataclasses
import errno
import subprocess
from pathlib import Path

import pytest

from sagan.config import Config, DataConfig, ModelConfig, TrainConfig
from sagan.data.errors import DataError
from sagan.data.prepare import prepare
from sagan.training.checkpoints import CheckpointError
from sagan.training.loop import TrainPaths, train
from sagan.training.settings import resolve_settings
from sagan.training.step import GANTrainer


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs at tmp_path/disk, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def _fill(disk: Path) -> Path:
    """Write until the disk is full; return the filler, to delete to free the space."""
    filler = disk / "filler"
    with open(filler, "wb") as file:
        try:
            while True:
                file.write(bytes(2**16))
                file.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def _config(steps: int) -> Config:
    return Config(
        data=DataConfig(image_size=32),
        model=ModelConfig(latent_dim=16, g_width=8, d_width=8),
        train=TrainConfig(
            batch_size=8,
            steps=steps,
            checkpoint_every=1,
            log_every=100,
            sample_every=100,
            mixed_precision="none",
        ),
    )


def _train(config: Config, disk: Path) -> GANTrainer:
    import tensorflow as tf

    trainer = GANTrainer(resolve_settings(config))
    pixels = tf.random.stateless_uniform((64, 32, 32, 3), (0, 0), -1.0, 1.0)
    dataset = tf.data.Dataset.from_tensor_slices(pixels).repeat().batch(8)
    train(trainer, dataset, 64, TrainPaths(disk / "checkpoints", disk / "plots"))
    return trainer


def test_a_full_disk_while_checkpointing_keeps_the_earlier_checkpoints(small_disk):
    _train(_config(steps=2), small_disk)
    filler = _fill(small_disk)
    with pytest.raises(CheckpointError, match=r"step 3 .*No space left.* kept: .*ckpt-2"):
        _train(_config(steps=4), small_disk)
    filler.unlink()
    trainer = _train(_config(steps=4), small_disk)  # resumes from ckpt-2 and completes
    assert int(trainer.step.numpy()) == 4


def test_a_full_disk_while_writing_shards_keeps_the_previous_output(small_disk):
    config = DataConfig(
        num_train=32, num_test=8, num_validation=8, image_size=32, images_per_shard=8, workers=1
    )
    out = small_disk / "prepared"
    before = prepare(config, out)
    filler = _fill(small_disk)
    # The stage turns a DataError into one line and exit status 1.
    with pytest.raises(DataError, match=r"cannot write the shard .*No space left"):
        prepare(dataclasses.replace(config, num_train=64), out)
    filler.unlink()
    assert (out / "manifest.json").is_file() and prepare(config, out) == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["prepared"]  # no staging left
