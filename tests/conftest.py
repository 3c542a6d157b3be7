"""Fixtures shared by the data tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest


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
