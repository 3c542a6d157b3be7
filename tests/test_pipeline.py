"""The tf.data input pipeline, on shards whose records say which image they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from sagan.data.errors import DataError
from sagan.data.manifest import Manifest, PreparedSplit
from sagan.data.pipeline import make_dataset, read_labels
from sagan.data.records import encode_example
from sagan.data.shards import write_shards

COUNT, SIZE = 40, 4


def _pixel(index: int) -> int:
    return index * 255 // (COUNT - 1)  # 0 for the first image, 255 for the last


def _write_prepared(directory: Path, per_shard: int) -> Path:
    """Image i is uniform grey ``_pixel(i)`` with labels (i, 2i)."""
    directory.mkdir()
    images = [np.full((SIZE, SIZE, 3), _pixel(i), np.uint8).tobytes() for i in range(COUNT)]
    records = (encode_example(images[i], SIZE, (i, 2 * i), f"{i}") for i in range(COUNT))
    shards = write_shards(records, directory, "train", per_shard)
    Manifest(
        source="test",
        image_size=SIZE,
        attribute_names=("index", "double"),
        attribute_classes=(COUNT, 2 * COUNT),
        coherence_pairs=(),
        splits={"train": PreparedSplit(COUNT, tuple(shards))},
    ).write(directory)
    return directory


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_prepared(tmp_path_factory.mktemp("data") / "prepared", per_shard=8)


def _indexes(dataset: tf.data.Dataset) -> list[int]:
    return [int(i) for _, labels in dataset for i in labels[:, 0]]


def test_images_are_float32_in_minus_one_to_one_with_their_labels(prepared: Path) -> None:
    dataset = make_dataset(prepared, "train", 8, shuffle=False, repeat=False, with_labels=True)
    batches = list(dataset)
    assert len(batches) == 5
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    assert images.dtype == np.float32 and images.shape == (COUNT, SIZE, SIZE, 3)
    assert labels.dtype == np.int32 and labels.tolist() == [[i, 2 * i] for i in range(COUNT)]
    expected = np.array([_pixel(i) for i in range(COUNT)]) / 127.5 - 1.0
    np.testing.assert_allclose(
        images, np.broadcast_to(expected[:, None, None, None], images.shape), atol=1e-6
    )
    assert images.min() == -1.0 and images.max() == 1.0


def test_the_labels_of_a_split_are_read_in_manifest_order(prepared: Path) -> None:
    labels = read_labels(prepared, "train")
    assert labels.dtype == np.int32 and labels.tolist() == [[i, 2 * i] for i in range(COUNT)]


def test_without_labels_the_elements_are_images(prepared: Path) -> None:
    batch = next(iter(make_dataset(prepared, "train", 8)))
    assert isinstance(batch, tf.Tensor) and batch.shape == (8, SIZE, SIZE, 3)


def test_batches_drop_the_remainder_unless_asked_not_to(prepared: Path) -> None:
    def sizes(**options: bool) -> list[int]:
        return [len(b) for b in make_dataset(prepared, "train", 16, repeat=False, **options)]

    assert sizes() == [16, 16]
    assert sizes(drop_remainder=False) == [16, 16, 8]


def test_shuffling_is_seeded_and_covers_every_image_once_per_epoch(prepared: Path) -> None:
    def epoch(seed: int) -> list[int]:
        dataset = make_dataset(prepared, "train", 8, seed=seed, repeat=False, with_labels=True)
        return _indexes(dataset)

    first = epoch(seed=1)
    assert sorted(first) == list(range(COUNT)) and first != list(range(COUNT))
    assert epoch(seed=1) == first and epoch(seed=2) != first


def test_a_restored_iterator_gives_the_same_next_batches(prepared: Path, tmp_path: Path) -> None:
    def build() -> tf.data.Dataset:
        return make_dataset(prepared, "train", 4, seed=3, with_labels=True, shuffle_buffer=16)

    iterator = iter(build())
    for _ in range(13):  # past the first epoch (10 batches)
        next(iterator)
    saved = tf.train.Checkpoint(iterator=iterator).save(str(tmp_path / "ckpt"))
    expected = [next(iterator)[1].numpy() for _ in range(5)]

    fresh = iter(build())  # as after a restart: a new dataset, a new iterator
    tf.train.Checkpoint(iterator=fresh).restore(saved).assert_consumed()
    actual = [next(fresh)[1].numpy() for _ in range(5)]
    np.testing.assert_array_equal(actual, expected)


def test_a_strategy_distributes_the_dataset(prepared: Path) -> None:
    # As the training loop does: global batches, split over the replicas by the strategy.
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    dataset = strategy.experimental_distribute_dataset(make_dataset(prepared, "train", 8))
    assert next(iter(dataset)).shape == (8, SIZE, SIZE, 3)


def test_missing_shards_or_manifest_say_what_to_run(tmp_path: Path, prepared: Path) -> None:
    with pytest.raises(DataError, match=r"manifest\.json .*run `dvc repro prepare`"):
        make_dataset(tmp_path, "train", 8)
    with pytest.raises(DataError, match="has no split 'test'"):
        make_dataset(prepared, "test", 8)
