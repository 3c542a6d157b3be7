"""The fixtures the tests share: session-scoped prepared data, a trained tiny run, VGG19
stand-in weights, a folder all workers share, and a reader of prepared records. (Plain
helpers: tests/helpers.py.)"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import pytest

from sagan import hardware
from sagan.hardware import Hardware
from tests.helpers import CPU_CLASSES, DEFAULT_CPU_CLASS, tiny_config, train_tiny


class TrainedRun(NamedTuple):
    root: Path  # checkpoints/ and plots/ of tiny_config() after its 4 steps
    metrics: dict[str, float]
    steps: int

    def copy_to(self, target: Path) -> Path:
        """A writable copy, for a test that goes on from this run."""
        shutil.copytree(self.root, target)
        return target


def cpu_class_name() -> str:
    name = os.environ.get("SAGAN_TEST_CPU", DEFAULT_CPU_CLASS)
    if name not in CPU_CLASSES:
        choices = ", ".join(CPU_CLASSES)
        raise pytest.UsageError(f"SAGAN_TEST_CPU={name!r}: expected one of {choices}")
    return name


@pytest.fixture(autouse=True)
def cpu_class(monkeypatch) -> Hardware:
    """The hardware probe of this process replaced by the CPU class SAGAN_TEST_CPU names."""
    pretended = CPU_CLASSES[cpu_class_name()]
    monkeypatch.setattr(hardware, "detect_hardware", lambda: pretended)
    return pretended


def pytest_report_header() -> str:
    return f"hardware probe: the {cpu_class_name()} CPU class (SAGAN_TEST_CPU)"


@pytest.fixture(autouse=True)
def float32_policy():
    """Each test leaves Keras's float32 policy behind: a mixed-precision one is process-wide,
    and the next test in the worker would build its layers with it."""
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def session_folder(tmp_path_factory) -> Path:
    """A folder that every pytest worker of this session sees (pytest-xdist gives each worker
    a base temporary folder of its own, under one parent)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> TrainedRun:
    """tiny_config() trained once per session; tests copy it before they write."""
    root = tmp_path_factory.mktemp("trained") / "run"
    trainer, metrics = train_tiny(tiny_config(), root)
    return TrainedRun(root, metrics, int(trainer.step.numpy()))


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory) -> Path:
    """tiny_config()'s synthetic faces prepared once per session (read them, never write)."""
    from sagan.data.prepare import prepare

    out = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare(tiny_config().data, out)
    return out


class Record(NamedTuple):
    image: np.ndarray  # (S, S, 3) uint8
    attributes: list[int]
    filename: str


@pytest.fixture
def read_records() -> Callable[[Path, str], list[Record]]:
    """``read_records(prepared_dir, split)``: every record of a split, in shard order."""
    import tensorflow as tf  # here, not at the top: tests that never read shards start fast

    def read(prepared: Path, split: str) -> list[Record]:
        records = []
        for path in sorted(prepared.glob(f"{split}-*.tfrecord")):
            for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
                feature = tf.train.Example.FromString(raw).features.feature
                size = feature["height"].int64_list.value[0]
                pixels = np.frombuffer(feature["image"].bytes_list.value[0], np.uint8)
                records.append(
                    Record(
                        pixels.reshape(size, size, 3),
                        list(feature["attributes"].int64_list.value),
                        feature["filename"].bytes_list.value[0].decode(),
                    )
                )
        return records

    return read


@pytest.fixture(scope="session")
def vgg19_stand_in(tmp_path_factory) -> Path:
    """VGG19 weights (random, include_top=False) saved where a test names them in
    train.perceptual_weights: the stand-in for Keras's ImageNet download."""
    import keras

    path = tmp_path_factory.mktemp("vgg19") / "vgg19_stand_in.weights.h5"
    keras.utils.set_random_seed(0)
    keras.applications.VGG19(include_top=False, weights=None).save_weights(path)
    return path
