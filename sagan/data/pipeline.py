"""The tf.data input pipeline over the prepared shards.

shard files -> (shuffle files) -> parallel interleave -> (seeded shuffle of records) ->
batch -> parse + decode the whole batch at once -> prefetch.

Parsing after batching lets ``tf.io.parse_example`` and ``decode_raw`` work on a batch in
one vectorised call instead of one per image. Every stage is checkpointable, so
``tf.train.Checkpoint(iterator=iter(dataset))`` saves the reading position (and the
shuffle buffer: about ``shuffle_buffer`` x 12 KiB at 64x64).

Under ``tf.distribute``, training hands the dataset of global batches to
``strategy.experimental_distribute_dataset``, which splits each batch over the replicas.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import tensorflow as tf

from sagan.data.errors import DataError
from sagan.data.manifest import Manifest
from sagan.data.records import decode_batch, decode_labels
from sagan.paths import MANIFEST_NAME

SHUFFLE_BUFFER = 4096  # records; the shards are already in a seeded random order
CYCLE_LENGTH = 4  # shards read at once by the interleave
READ_BUFFER = 1 << 20  # bytes read ahead per shard


def make_dataset(
    data_dir: str | Path,
    split: str,
    batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    repeat: bool = True,
    drop_remainder: bool = True,
    with_labels: bool = False,
    shuffle_buffer: int = SHUFFLE_BUFFER,
) -> tf.data.Dataset:
    """Batches of float32 ``(B, S, S, 3)`` images in [-1, 1], or ``(images, labels)``.

    ``labels`` are int32 ``(B, A)`` in the order of the manifest's ``attribute_names``.
    With ``shuffle``, the order is a function of ``seed`` (files reshuffled every epoch);
    without it, records come in the manifest's order, as evaluation wants them.
    """
    manifest = Manifest.read(data_dir)
    files = _shard_paths(Path(data_dir), manifest, split)
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.interleave(
        functools.partial(tf.data.TFRecordDataset, buffer_size=READ_BUFFER),
        cycle_length=min(CYCLE_LENGTH, len(files)) if shuffle else 1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,  # the same seed gives the same batches
    )
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    decode = functools.partial(
        decode_batch,
        image_size=manifest.image_size,
        num_attributes=len(manifest.attribute_names),
        with_labels=with_labels,
    )
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def read_labels(data_dir: str | Path, split: str) -> np.ndarray:
    """Every label of a split as int32 (N, A) in the manifest's order, images left undecoded."""
    manifest = Manifest.read(data_dir)
    files = _shard_paths(Path(data_dir), manifest, split)
    num_attributes = len(manifest.attribute_names)
    decode = functools.partial(decode_labels, num_attributes=num_attributes)
    batches = tf.data.TFRecordDataset(files).batch(SHUFFLE_BUFFER).map(decode)
    found = [batch.numpy() for batch in batches]
    return np.concatenate(found) if found else np.zeros((0, num_attributes), np.int32)


def _shard_paths(data_dir: Path, manifest: Manifest, split: str) -> list[str]:
    if split not in manifest.splits:
        raise DataError(f"{data_dir / MANIFEST_NAME} has no split {split!r}")
    paths = [data_dir / shard.file for shard in manifest.splits[split].shards]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise DataError(f"shards listed in the manifest are missing: {', '.join(missing[:3])}")
    return [str(path) for path in paths]
