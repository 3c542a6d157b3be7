"""The record format of the prepared shards: one ``tf.train.Example`` per image.

Features: ``image`` (raw uint8 bytes, H x W x 3 row-major), ``height``, ``width``,
``attributes`` (int64 labels, one per attribute; empty when the source has none) and
``filename`` (the source file name). Raw bytes, not JPEG/PNG: decoding then costs nothing
in the input pipeline, which matters more than disk at 12 KiB an image.
"""

from __future__ import annotations

import tensorflow as tf

IMAGE, HEIGHT, WIDTH, ATTRIBUTES, FILENAME = "image", "height", "width", "attributes", "filename"


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def encode_example(image: bytes, size: int, labels: tuple[int, ...], filename: str) -> bytes:
    """One serialized record of a ``(size, size, 3)`` image; byte-identical for equal input."""

    def ints(values: tuple[int, ...]) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    def data(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    features = {
        IMAGE: data(image),
        HEIGHT: ints((size,)),
        WIDTH: ints((size,)),
        ATTRIBUTES: ints(labels),
        FILENAME: data(filename.encode("utf-8")),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    # Features is a protobuf map: only deterministic serialization fixes its key order.
    return example.SerializeToString(deterministic=True)


def decode_batch(
    serialized: tf.Tensor, image_size: int, num_attributes: int, with_labels: bool
) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor]:
    """A batch of serialized records -> float32 images in [-1, 1] (and int32 labels).

    ``serialized`` is (B,) strings; images come out (B, S, S, 3), labels (B, A).
    """
    spec = {IMAGE: tf.io.FixedLenFeature([], tf.string)}
    if with_labels:
        spec[ATTRIBUTES] = tf.io.FixedLenFeature([num_attributes], tf.int64)
    parsed = tf.io.parse_example(serialized, spec)
    pixels = tf.io.decode_raw(parsed[IMAGE], tf.uint8)  # (B, S*S*3)
    pixels = tf.reshape(pixels, [-1, image_size, image_size, 3])  # (B, S, S, 3)
    images = tf.cast(pixels, tf.float32) / 127.5 - 1.0  # the reference's [-1, 1] scaling
    if with_labels:
        return images, tf.cast(parsed[ATTRIBUTES], tf.int32)
    return images


def decode_labels(serialized: tf.Tensor, num_attributes: int) -> tf.Tensor:
    """A batch of serialized records -> their int32 labels (B, A), leaving the images be."""
    spec = {ATTRIBUTES: tf.io.FixedLenFeature([num_attributes], tf.int64)}
    return tf.cast(tf.io.parse_example(serialized, spec)[ATTRIBUTES], tf.int32)
