"""The prepared data's manifest: one typed record, the same after a trip through its file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagan.data.errors import DataError
from sagan.data.manifest import Ignored, Manifest, PreparedSplit, Shard, Skipped
from sagan.paths import MANIFEST_NAME

MANIFEST = Manifest(
    source="synthetic",
    image_size=32,
    attribute_names=("hair", "eyebrows", "glasses"),
    attribute_classes=(4, 4, 2),
    coherence_pairs=(("hair", "eyebrows"),),
    splits={
        "train": PreparedSplit(5, (Shard("train-00000-of-00001.tfrecord", 5, "ab" * 32),)),
        "test": PreparedSplit(2, (Shard("test-00000-of-00001.tfrecord", 2, "cd" * 32),)),
    },
    skipped=(Skipped("bad.png", "OSError: truncated"),),
    ignored={"not an image file name": Ignored(1, ("notes.txt",))},
    params={"source": "synthetic", "image_size": 32},
)


def test_a_manifest_round_trips_through_its_documented_json(tmp_path: Path) -> None:
    MANIFEST.write(tmp_path)
    assert Manifest.read(tmp_path) == MANIFEST
    raw = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert raw["splits"]["train"]["count"] == 5
    assert raw["splits"]["test"]["shards"][0] == {
        "file": "test-00000-of-00001.tfrecord",
        "count": 2,
        "sha256": "cd" * 32,
    }
    assert raw["coherence_pairs"] == [["hair", "eyebrows"]]
    assert raw["skipped"] == [{"file": "bad.png", "reason": "OSError: truncated"}]
    assert raw["ignored"] == {"not an image file name": {"count": 1, "examples": ["notes.txt"]}}
    assert MANIFEST.attributes == {"hair": 4, "eyebrows": 4, "glasses": 2}


def test_a_missing_or_malformed_manifest_names_the_file_and_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"cannot read .*{MANIFEST_NAME} .*dvc repro prepare"):
        Manifest.read(tmp_path)
    MANIFEST.write(tmp_path)
    raw = json.loads((tmp_path / MANIFEST_NAME).read_text())
    del raw["coherence_pairs"]  # a manifest from before the pairs travelled in it
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(DataError, match=rf"{MANIFEST_NAME} is not a manifest .*'coherence_pairs'"):
        Manifest.read(tmp_path)
    raw["coherence_pairs"] = [["hair", "smile"]]
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r"unknown attributes \['smile'\].*rerun `dvc repro"):
        Manifest.read(tmp_path)
