"""sagan/randomness.py: the same draws with XLA and without, and TensorFlow's own draws
where the arithmetic allows."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sagan import randomness

SEED = tf.constant([3, 11], tf.int64)
MAXVAL = tf.constant(1_000_003, tf.int64)
DRAWS = {
    "uniform": lambda seed: randomness.uniform((5, 7), seed),
    "integers": lambda seed: randomness.integers(9, seed, MAXVAL),
    "normal": lambda seed: randomness.normal((64, 17), seed),
    "split": lambda seed: randomness.split(seed, 3),
    "fold_in": lambda seed: randomness.fold_in(seed, 4),
}


@pytest.mark.parametrize("name", list(DRAWS))
def test_xla_draws_what_tensorflow_draws_without_it(name):
    plain = DRAWS[name](SEED).numpy()
    compiled = tf.function(DRAWS[name], jit_compile=True, autograph=False)(SEED).numpy()
    if name == "normal":  # log, sin and cos round by their kernel
        np.testing.assert_allclose(compiled, plain, rtol=0, atol=1e-6)
    else:
        np.testing.assert_array_equal(compiled, plain)


def test_tensorflows_own_stateless_ops_disagree_under_xla():
    """Why the module exists: if this starts to pass, TensorFlow fixed it."""
    draw = lambda seed: tf.random.stateless_normal((64,), seed, alg="philox")  # noqa: E731
    compiled = tf.function(draw, jit_compile=True, autograph=False)(SEED).numpy()
    assert not np.allclose(compiled, draw(SEED).numpy(), atol=1e-3)


def test_uniform_and_integer_draws_are_tensorflows_bit_for_bit():
    np.testing.assert_array_equal(
        randomness.uniform((5, 7), SEED), tf.random.stateless_uniform((5, 7), SEED)
    )
    expected = tf.random.stateless_uniform(
        (9,), SEED, minval=tf.constant(0, tf.int64), maxval=MAXVAL, dtype=tf.int64
    )
    np.testing.assert_array_equal(randomness.integers(9, SEED, MAXVAL), expected)


def test_normal_draws_are_tensorflows_box_muller_to_a_few_ulp():
    np.testing.assert_allclose(
        randomness.normal((64, 17), SEED),
        tf.random.stateless_normal((64, 17), SEED, alg="philox"),
        rtol=0,
        atol=2e-6,
    )


def test_normal_draws_are_standard_normal_and_a_prefix_of_longer_draws():
    values = randomness.normal((200_000,), SEED).numpy().astype(np.float64)
    assert abs(values.mean()) < 0.01 and abs(values.std() - 1) < 0.01
    assert abs(np.mean(values**4) - 3) < 0.05  # the kurtosis of a normal
    np.testing.assert_array_equal(randomness.normal((5,), SEED), values[:5].astype(np.float32))


def test_uniform_draws_fill_the_unit_interval():
    values = randomness.uniform((100_000,), SEED).numpy()
    assert values.min() >= 0 and values.max() < 1
    counts, _ = np.histogram(values, bins=10, range=(0, 1))
    assert counts.min() > 9_500 and counts.max() < 10_500
