"""The prepare stage: shards and manifest, byte-identical reruns, atomic output, the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from sagan.config import DataConfig
from sagan.data import prepare as prepare_module
from sagan.data.errors import DataError
from sagan.data.manifest import Manifest
from sagan.data.prepare import prepare
from sagan.data.synthetic import ATTRIBUTE_CLASSES, ATTRIBUTE_NAMES, COHERENCE_PAIRS, render_face
from sagan.files import TEMPORARY_PREFIX
from sagan.paths import MANIFEST_NAME
from stages.prepare import main
from tests.helpers import REPO

SMALL = DataConfig(
    image_size=32, num_train=10, num_test=3, num_validation=2, seed=5, images_per_shard=4, workers=1
)


def _contents(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def _write_params(directory: Path, **data: object) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(data)
    (directory / "params.yaml").write_text(yaml.safe_dump(params))


def test_synthetic_shards_hold_the_rendered_faces(tmp_path: Path, read_records) -> None:
    out = tmp_path / "prepared"
    manifest = prepare(SMALL, out)

    assert sorted(_contents(out)) == [
        MANIFEST_NAME,
        "test-00000-of-00001.tfrecord",
        "train-00000-of-00003.tfrecord",
        "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord",
        "validation-00000-of-00001.tfrecord",
    ]
    assert Manifest.read(out) == manifest
    assert manifest.source == "synthetic" and manifest.image_size == 32
    assert manifest.attribute_names == ATTRIBUTE_NAMES
    assert manifest.attribute_classes == tuple(ATTRIBUTE_CLASSES.values())
    assert manifest.coherence_pairs == COHERENCE_PAIRS  # evaluate scores them, not synthetic.py
    assert [s.count for s in manifest.splits["train"].shards] == [4, 4, 2]
    assert manifest.splits["test"].count == 3 and manifest.splits["validation"].count == 2
    assert manifest.skipped == () and manifest.ignored == {}
    for split in manifest.splits.values():
        for shard in split.shards:
            assert hashlib.sha256((out / shard.file).read_bytes()).hexdigest() == shard.sha256

    records = [
        record for split in ("train", "test", "validation") for record in read_records(out, split)
    ]
    for index, record in enumerate(records):  # test faces follow the train ones, validation last
        image, labels = render_face(5, index, 32)
        np.testing.assert_array_equal(record.image, image)
        assert record.attributes == labels.tolist()
        assert record.filename == f"synthetic/{index:06d}"


def test_same_params_give_byte_identical_output_whatever_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepare_module, "WINDOW", 3)  # several windows through the pool
    prepare(SMALL, tmp_path / "one")
    prepare(dataclasses.replace(SMALL, workers=2), tmp_path / "two")
    assert _contents(tmp_path / "one") == _contents(tmp_path / "two")


def test_a_rerun_replaces_the_output_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    prepare(SMALL, out)
    first = _contents(out)
    prepare(dataclasses.replace(SMALL, images_per_shard=100), out)
    assert sorted(_contents(out)) == [
        MANIFEST_NAME,
        "test-00000-of-00001.tfrecord",
        "train-00000-of-00001.tfrecord",
        "validation-00000-of-00001.tfrecord",
    ]
    prepare(SMALL, out)
    assert _contents(out) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_a_failed_run_keeps_the_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    prepare(SMALL, out)
    before = _contents(out)
    with pytest.raises(DataError, match="does not exist"):
        prepare(DataConfig(source="folder", path=str(tmp_path / "missing"), workers=1), out)
    assert _contents(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


@pytest.mark.pipeline
def test_a_killed_prepare_leaves_no_complete_looking_output(tmp_path: Path) -> None:
    _write_params(
        tmp_path, image_size=32, num_train=3000, num_test=10, num_validation=10, images_per_shard=50
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.prepare"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    data = tmp_path / "data"
    deadline = time.monotonic() + 60
    while not list(data.glob(f"{TEMPORARY_PREFIX}prepared.*/*")):  # a shard is being written
        assert process.poll() is None, "prepare ended before it could be killed"
        assert time.monotonic() < deadline, "prepare wrote no shard within 60 s"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    assert not (data / "prepared").exists()
    leftovers = [p.name for p in data.rglob("*") if p.is_file()]
    assert leftovers and all(name.endswith(".partial") for name in leftovers)

    prepare(SMALL, data / "prepared")  # the next run clears what the killed one left
    assert sorted(p.name for p in data.iterdir()) == ["prepared"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "folder", "path": "missing.zip"}, "data.path missing.zip does not exist"),
        ({"source": "folder", "path": None}, "data.path must name a folder or .zip"),
        ({"source": "celeba"}, "data.source must be one of synthetic, folder, tfds, got 'celeba'"),
        ({"max_bad_fraction": 2}, "data.max_bad_fraction must be at most 1.0, got 2"),
    ],
)
def test_the_stage_exits_1_with_one_line_naming_the_culprit(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    data: dict[str, object],
    message: str,
) -> None:
    _write_params(tmp_path, **data)
    monkeypatch.chdir(tmp_path)
    assert main() == 1
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert message in record.getMessage() and "\n" not in record.getMessage()
    assert not (tmp_path / "data" / "prepared").exists()
