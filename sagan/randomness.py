"""Stateless random draws that give the same numbers with XLA and without.

Inside an XLA cluster TensorFlow's stateless ops turn the same random bits into other
numbers than its own kernels do (another float mapping and normal transform; with the
default ``auto_select`` even another generator), so with ``train.jit_compile`` on (what
``auto`` picks on GPUs and on CPUs without bfloat16 units) a seed would train another run.
Here only the raw Philox bits come from TensorFlow, which XLA reproduces exactly, and the
arithmetic that turns them into numbers is ours, the same ops in both: uniform draws are
TensorFlow's own bit for bit, normal ones the same Box-Muller transform to within a few ulp
(``log``, ``sin`` and ``cos`` round by their kernel). Every random draw of the package (but
Keras's weight initialisers) goes through here.
"""

from __future__ import annotations

import math

import tensorflow as tf

ALGORITHM = "philox"
_ONE = 0x3F800000  # the bits of float32 1.0: sign 0, exponent 127, mantissa 0
_MANTISSA = 0x7FFFFF  # the 23 bits of a float32 mantissa
_SMALLEST_RADIUS_DRAW = 1.0e-7  # as TensorFlow's Box-Muller: log(0) would be -inf


def _bits(count, seed, dtype=tf.uint32) -> tf.Tensor:
    """``count`` raw Philox integers (count,) keyed by the stateless ``seed`` (2 integers)."""
    return tf.random.stateless_uniform(
        (count,), seed, minval=None, maxval=None, dtype=dtype, alg=ALGORITHM
    )


def _unit(bits: tf.Tensor) -> tf.Tensor:
    """Floats in [0, 1) from uint32 bits: the low 23 bits as the mantissa of a number in
    [1, 2), minus 1 (TensorFlow's mapping)."""
    in_one_to_two = tf.bitwise.bitwise_or(tf.bitwise.bitwise_and(bits, _MANTISSA), _ONE)
    return tf.bitcast(in_one_to_two, tf.float32) - 1.0


def _count(shape) -> tf.Tensor:
    return tf.reduce_prod(tf.convert_to_tensor(shape, tf.int32))


def uniform(shape, seed) -> tf.Tensor:
    """float32 values in [0, 1) of ``shape``, keyed by the stateless ``seed``."""
    return tf.reshape(_unit(_bits(_count(shape), seed)), shape)


def integers(count: int, seed, maxval: tf.Tensor) -> tf.Tensor:
    """``count`` int64 values in [0, maxval), keyed by the stateless ``seed``: 64 random
    bits modulo ``maxval`` (TensorFlow's mapping; the bias is below maxval / 2^64)."""
    bits = _bits(count, seed, tf.uint64)
    return tf.cast(bits % tf.cast(maxval, tf.uint64), tf.int64)


def normal(shape, seed) -> tf.Tensor:
    """Standard normal float32 values of ``shape``, keyed by the stateless ``seed``.

    Box-Muller on pairs of uniforms (u, v): r = sqrt(-2 ln u), then r sin(2πv), r cos(2πv).
    """
    count = _count(shape)
    pairs = tf.reshape(_bits(4 * ((count + 3) // 4), seed), (-1, 2))  # Philox gives 4 at a time
    radius_draw = tf.maximum(_unit(pairs[:, 0]), _SMALLEST_RADIUS_DRAW)
    angle = 2.0 * math.pi * _unit(pairs[:, 1])
    radius = tf.sqrt(-2.0 * tf.math.log(radius_draw))
    values = tf.stack([tf.sin(angle) * radius, tf.cos(angle) * radius], axis=1)  # (P, 2)
    return tf.reshape(tf.reshape(values, (-1,))[:count], shape)


def split(seed, count: int) -> tf.Tensor:
    """``count`` new seeds (count, 2) derived from ``seed``."""
    return tf.random.experimental.stateless_split(seed, count, alg=ALGORITHM)


def fold_in(seed, data) -> tf.Tensor:
    """A new seed from ``seed`` and the integer ``data``."""
    return tf.random.experimental.stateless_fold_in(seed, data, alg=ALGORITHM)
