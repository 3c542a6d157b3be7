"""The folder source: directories and zips, CelebA's split and attributes, bad input."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sagan.config import ConfigError, DataConfig
from sagan.data.celeba import ATTRIBUTE_FILE, PARTITION_FILE
from sagan.data.errors import DataError
from sagan.data.manifest import Ignored
from sagan.data.prepare import prepare
from tests.celeba_standin import (
    CELEBA_ATTRIBUTES,
    celeba_name,
    celeba_partition,
    random_jpeg,
    write_celeba_standin,
)

BASE = DataConfig(
    source="folder", image_size=32, crop_size=None, num_test=2, num_validation=1, workers=1
)


def _png(value: int, size: tuple[int, int] = (40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (value, value, value)).save(buffer, "PNG")
    return buffer.getvalue()


def _images(directory: Path, count: int) -> Path:
    """``count`` uniform grey PNGs whose grey level is their number, in two subfolders."""
    for index in range(count):
        path = directory / f"part{index % 2}" / f"{index:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_png(index))
    return directory


def _bad_files(directory: Path) -> dict[str, str]:
    """Unreadable files that carry image names -> the start of the reason prepare gives."""
    jpeg = random_jpeg(np.random.default_rng(0), (40, 40))
    files = {
        "zero.jpg": (b"", "UnidentifiedImageError"),
        "text.png": (b"hello, not a picture", "UnidentifiedImageError"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "OSError: image file is truncated"),
        "corrupt.png": (_png(7)[:60] + b"\x00" * 40, ""),
    }
    for name, (data, _) in files.items():
        (directory / name).write_bytes(data)
    return {name: reason for name, (data, reason) in files.items()}


def test_bad_files_are_skipped_counted_and_listed(
    tmp_path: Path, read_records, caplog: pytest.LogCaptureFixture
) -> None:
    root = _images(tmp_path / "images", 12)
    bad = _bad_files(root)
    (root / "README.txt").write_text("not an image")
    config = dataclasses.replace(BASE, path=str(root), max_bad_fraction=0.5)
    manifest = prepare(config, tmp_path / "prepared")

    skipped = {entry.file: entry.reason for entry in manifest.skipped}
    assert sorted(skipped) == sorted(bad)
    assert all(skipped[name].startswith(reason) for name, reason in bad.items())
    assert manifest.ignored == {"not an image file name": Ignored(1, ("README.txt",))}
    assert sum(split.count for split in manifest.splits.values()) == 12
    assert manifest.attribute_names == () and manifest.attribute_classes == ()
    records = [
        record
        for split in ("train", "validation", "test")
        for record in read_records(tmp_path / "prepared", split)
    ]
    for record in records:  # each image is uniform grey at the level its name says
        assert record.attributes == []
        assert (record.image == int(Path(record.filename).stem)).all()
    assert sum("skipped" in r.getMessage() for r in caplog.records if r.levelname == "WARNING") >= 4


def test_too_many_bad_files_stop_with_examples(tmp_path: Path) -> None:
    root = _images(tmp_path / "images", 12)
    _bad_files(root)
    config = dataclasses.replace(BASE, path=str(root), max_bad_fraction=0.1)
    with pytest.raises(
        DataError, match=r"more than data.max_bad_fraction=0.1; e\.g\. \S+\.(jpg|png) \("
    ):
        prepare(config, tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


def test_small_images_are_skipped_by_choice_not_counted_bad(tmp_path: Path) -> None:
    root = _images(tmp_path / "images", 6)
    (root / "tiny.png").write_bytes(_png(9, size=(20, 30)))
    config = dataclasses.replace(
        BASE, path=str(root), small_images="skip", max_bad_fraction=0.0, num_validation=2
    )
    manifest = prepare(config, tmp_path / "prepared")
    (entry,) = manifest.skipped
    assert entry.file == "tiny.png"
    assert entry.reason.startswith("20x30 is smaller than 32 (data.crop_size or data.image_size)")
    upsampled = prepare(dataclasses.replace(config, small_images="upsample"), tmp_path / "up")
    assert upsampled.skipped == () and upsampled.splits["train"].count == 7 - 2 - 2


def test_zip_junk_and_unsafe_names_are_ignored_and_nothing_is_written_outside(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in" / "faces.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(5):
            archive.writestr(f"faces/{index}.png", _png(index))
        for name in ("../evil.png", "/abs/evil.png", "faces/../../evil.png"):
            archive.writestr(zipfile.ZipInfo(name), _png(1))
        archive.writestr("__MACOSX/faces/._0.png", b"\x00\x05\x16\x07")
        archive.writestr("faces/notes.txt", "hello")
    manifest = prepare(dataclasses.replace(BASE, path=str(path)), tmp_path / "out" / "prepared")

    counts = {split: info.count for split, info in manifest.splits.items()}
    assert counts == {"train": 2, "validation": 1, "test": 2}
    assert {reason: info.count for reason, info in manifest.ignored.items()} == {
        "macOS metadata": 1,
        "not an image file name": 1,
        "unsafe path (absolute or with ..)": 3,
    }
    assert not [p for p in tmp_path.rglob("*evil*")] and not Path("/abs").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["prepared"]


def test_celeba_zip_uses_the_official_split_and_the_attributes(
    tmp_path: Path, read_records
) -> None:
    count = 30
    path = write_celeba_standin(tmp_path / "celeba", count, size=(36, 44))
    attribute_rows = (tmp_path / "celeba" / ATTRIBUTE_FILE).read_text().splitlines()[2:]
    expected = {row.split()[0]: [int(v == "1") for v in row.split()[1:]] for row in attribute_rows}
    config = dataclasses.replace(
        BASE, path=str(path), crop_size=36, num_test=None, num_validation=None
    )
    manifest = prepare(config, tmp_path / "prepared")

    assert manifest.attribute_names == tuple(CELEBA_ATTRIBUTES)
    assert manifest.attribute_classes == (2,) * 40
    splits = {"train": (0,), "validation": (1,), "test": (2,)}  # CelebA's own partition
    for split, partitions in splits.items():
        records = read_records(tmp_path / "prepared", split)
        names = sorted(Path(r.filename).name for r in records)
        assert names == [
            celeba_name(i) for i in range(count) if celeba_partition(i, count) in partitions
        ]
        assert all(r.filename.startswith("img_align_celeba/") for r in records)
        assert all(r.attributes == expected[Path(r.filename).name] for r in records)
        assert manifest.splits[split].count == len(records)

    capped = prepare(
        dataclasses.replace(config, num_train=5, num_validation=1, num_test=2), tmp_path / "capped"
    )
    counts = {split: info.count for split, info in capped.splits.items()}
    assert counts == {"train": 5, "validation": 1, "test": 2}


def test_celeba_files_beside_a_folder_apply_too_and_unlisted_images_are_ignored(
    tmp_path: Path,
) -> None:
    root = tmp_path / "celeba" / "img_align_celeba"
    root.mkdir(parents=True)
    for index in range(4):
        (root / celeba_name(index)).write_bytes(_png(index))
    (root / "extra.jpg").write_bytes(_png(9))
    (root.parent / PARTITION_FILE).write_text("000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n")
    manifest = prepare(dataclasses.replace(BASE, path=str(root), num_test=None), tmp_path / "out")
    counts = {split: info.count for split, info in manifest.splits.items()}
    assert counts == {"train": 1, "validation": 1, "test": 1}
    assert manifest.ignored == {
        f"no row in {PARTITION_FILE}": Ignored(2, ("000004.jpg", "extra.jpg"))
    }


def test_without_a_partition_file_a_seeded_hash_picks_num_test_images(
    tmp_path: Path, read_records
) -> None:
    root = _images(tmp_path / "images", 20)
    config = dataclasses.replace(BASE, path=str(root), num_test=5)

    def test_names(seed: int, out: str) -> list[str]:
        prepare(dataclasses.replace(config, seed=seed), tmp_path / out)
        return [r.filename for r in read_records(tmp_path / out, "test")]

    first, again, other = test_names(0, "a"), test_names(0, "b"), test_names(1, "c")
    assert len(first) == 5 and first == again and sorted(first) != sorted(other)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda tmp: tmp / "nowhere", DataError, "nowhere does not exist"),
        (lambda tmp: _mkdir(tmp / "empty"), DataError, r"no images \(.*\) in data.path .*empty"),
        (lambda tmp: _write(tmp / "broken.zip", b"PK\x03\x04 not really"), DataError,
         "broken.zip is not a readable directory or .zip"),
        (lambda tmp: _images(tmp / "few", 2), DataError,
         "has 2 images, all taken by data.num_test=2"),
        (lambda tmp: _with_attributes(tmp, "2\nA B\n000001.jpg 1 -1\n000002.jpg 1\n"), DataError,
         rf"{ATTRIBUTE_FILE}:4: expected a file name and 2 values of -1 or 1, got 1"),
        (lambda tmp: _with_attributes(tmp, "3\nA\n000001.jpg 1\n"), DataError,
         "line 1 says 3 images, the file has 1"),
    ],
    ids=["missing", "empty", "broken-zip", "too-few", "attr-row", "attr-count"],
)  # fmt: skip
def test_unusable_input_is_an_error_naming_the_path_or_key(
    tmp_path: Path, make, error: type[Exception], message: str
) -> None:
    path = make(tmp_path)
    config = dataclasses.replace(BASE, path=str(path))
    with pytest.raises(error, match=message):
        prepare(config, tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


def test_num_test_null_needs_a_partition_file(tmp_path: Path) -> None:
    config = dataclasses.replace(BASE, path=str(_images(tmp_path / "images", 4)), num_test=None)
    with pytest.raises(
        ConfigError, match=f"data.num_test must be a number: .* no {PARTITION_FILE}"
    ):
        prepare(config, tmp_path / "prepared")


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _with_attributes(tmp_path: Path, text: str) -> Path:
    root = _images(tmp_path / "data" / "images", 4)
    (root.parent / ATTRIBUTE_FILE).write_text(text)
    return root
