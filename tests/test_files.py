"""Atomic writes, the sweep of what a killed run leaves, JSON and sha256 (sagan.files)."""

from __future__ import annotations

import hashlib

import pytest

from sagan.files import (
    TEMPORARY_PREFIX,
    atomic_directory,
    atomic_path,
    read_json,
    sha256,
    sweep_temporaries,
    write_json,
)


def test_atomic_path_replaces_the_file_only_on_success(tmp_path):
    path = tmp_path / "out" / "scores.json"
    with atomic_path(path) as temporary:
        assert temporary.parent == path.parent and temporary.name.startswith(TEMPORARY_PREFIX)
        assert temporary.suffix == ".json"
        temporary.write_text("new")
    assert path.read_text() == "new"

    with pytest.raises(RuntimeError), atomic_path(path) as temporary:
        temporary.write_text("half")
        raise RuntimeError("failed mid-write")
    assert path.read_text() == "new"
    assert list(path.parent.iterdir()) == [path]


def test_atomic_directory_replaces_whole_and_removes_stale_siblings(tmp_path):
    target = tmp_path / "samples"
    (target / "old").mkdir(parents=True)
    (target / "old" / "0.png").write_bytes(b"old")
    stale = tmp_path / f"{TEMPORARY_PREFIX}samples.abc12345"  # what a kill mid-write left
    stale.mkdir()
    (stale / "partial.png").write_bytes(b"half")
    other = tmp_path / f"{TEMPORARY_PREFIX}models.abc12345"  # another output's: not ours to remove
    other.mkdir()

    with atomic_directory(target) as staging:
        assert not stale.exists()
        (staging / "new.png").write_bytes(b"new")
    assert sorted(p.name for p in target.iterdir()) == ["new.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "samples"]

    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "half.png").write_bytes(b"half")
        raise RuntimeError("failed mid-write")
    assert sorted(p.name for p in target.iterdir()) == ["new.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "samples"]


def test_sweep_removes_nested_temporaries_and_nothing_else(tmp_path):
    kept = [
        tmp_path / "plots" / "attention" / "step_000006.npz",
        tmp_path / "plots" / ".gitignore",
        tmp_path / "plots" / "sagan-tmp.not-hidden.png",
    ]
    stale_file = tmp_path / "plots" / "attention" / f"{TEMPORARY_PREFIX}step_000012.x1.npz"
    stale_folder = tmp_path / "checkpoints" / f"{TEMPORARY_PREFIX}plots.x2"
    for path in [*kept, stale_file, stale_folder / "inner" / "a.png"]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")

    removed = sweep_temporaries(tmp_path)
    assert sorted(removed) == sorted([stale_file, stale_folder])
    remaining = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert remaining == sorted(kept)
    assert sweep_temporaries(tmp_path / "missing") == []


def test_json_round_trips_sorted_and_indented(tmp_path):
    value = {"b": [1, 2.5, None], "a": {"name": "Zoë", "ok": True}}
    path = tmp_path / "metrics" / "train.json"
    write_json(path, value)
    assert read_json(path) == value
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n  "a": {\n') and "Zoë" in text and text.endswith("}\n")
    assert list(path.parent.iterdir()) == [path]


def test_sha256_is_the_digest_of_the_bytes(tmp_path):
    path = tmp_path / "shard.tfrecord"
    path.write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2
    assert sha256(path) == expected == hashlib.sha256(b"abc").hexdigest()
    payload = bytes(range(256)) * 5000  # more than one read chunk
    path.write_bytes(payload)
    assert sha256(path) == hashlib.sha256(payload).hexdigest()
