"""The tfds source, offline: tfds.testing.mock_data stands in for celeb_a."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from sagan.config import DataConfig
from sagan.data.errors import DataError
from sagan.data.prepare import prepare
from tests.celeba_standin import CELEBA_ATTRIBUTES


def test_celeb_a_from_tfds_is_cropped_resized_and_labelled(tmp_path: Path, read_records) -> None:
    config = DataConfig(source="tfds", path=str(tmp_path / "tfds"), num_train=3, num_test=2,
                        num_validation=1, image_size=32, workers=1)  # fmt: skip
    with tfds.testing.mock_data(num_examples=5):
        manifest = prepare(config, tmp_path / "prepared")
    assert manifest.attribute_names == tuple(CELEBA_ATTRIBUTES)
    counts = {split: info.count for split, info in manifest.splits.items()}
    assert counts == {"train": 3, "validation": 1, "test": 2}  # CelebA's official partition
    names = [r.filename for r in read_records(tmp_path / "prepared", "validation")]
    assert names == ["celeb_a/validation/000000"]
    records = read_records(tmp_path / "prepared", "train")
    assert [r.filename for r in records] == [f"celeb_a/train/{i:06d}" for i in range(3)]
    assert all(r.image.shape == (32, 32, 3) and len(r.attributes) == 40 for r in records)
    assert all(set(r.attributes) <= {0, 1} for r in records)


def test_a_failed_download_points_to_the_folder_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Google Drive: download quota exceeded")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", refuse)
    config = DataConfig(source="tfds", path=str(tmp_path / "tfds"), workers=1)
    with pytest.raises(DataError, match=r"quota exceeded.*data\.source: folder"):
        prepare(config, tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()
