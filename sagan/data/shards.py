"""Stream serialized records into numbered TFRecord shards and hash them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import tensorflow as tf

from sagan.data.errors import DataError
from sagan.data.manifest import Shard
from sagan.data.records import shard_name
from sagan.files import sha256


def write_shards(
    records: Iterator[bytes], directory: Path, split: str, per_shard: int
) -> list[Shard]:
    """Write ``records`` as ``{split}-NNNNN-of-MMMMM.tfrecord`` files of ``per_shard`` each.

    Shards are written under a ``.partial`` name and renamed once their total is known.
    Returns the shards, in order.
    """
    partials = []
    for index in itertools.count():
        first = next(records, None)
        if first is None:
            break
        path = directory / f"{split}-{index:05d}.partial"
        count = 0
        try:
            with tf.io.TFRecordWriter(str(path)) as writer:
                for record in itertools.chain([first], itertools.islice(records, per_shard - 1)):
                    writer.write(record)
                    count += 1
        except (OSError, tf.errors.OpError) as error:  # a full disk, above all
            raise DataError(f"cannot write the shard {path}: {error}") from error
        partials.append((path, count))
    shards = []
    for index, (path, count) in enumerate(partials):
        final = path.rename(directory / shard_name(split, index, len(partials)))
        shards.append(Shard(final.name, count, sha256(final)))
    return shards
