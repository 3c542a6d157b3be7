"""DiffAugment: each transform against NumPy, its draws, its gradient and its params."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import yaml

from sagan.config import AUGMENTATIONS, ConfigError, config_from_dict
from sagan.training import augment as diffaugment
from tests.helpers import REPO

SIZE = 16


def _images(count: int = 4) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (count, SIZE, SIZE, 3)).astype("float32")


def test_color_is_brightness_then_saturation_then_contrast():
    images, draws = _images(2), np.array([[0.9, 0.25, 0.0], [0.5, 1.0, 1.0]], "float32")
    expected = []
    for image, (b, s, c) in zip(images, draws, strict=True):
        x = image + (b - 0.5)
        x = x.mean(axis=2, keepdims=True) + (x - x.mean(axis=2, keepdims=True)) * 2 * s
        expected.append(x.mean() + (x - x.mean()) * (c + 0.5))
    got = diffaugment.color(tf.constant(images), tf.constant(draws))
    np.testing.assert_allclose(got.numpy(), np.stack(expected), rtol=1e-5, atol=1e-6)


def test_translation_shifts_each_image_and_fills_with_zeros():
    images = _images(2)
    # limit = 2 pixels at 16: a draw in [0, 1) picks a shift of -2 … 2; 0.99 → +2, 0.0 → -2
    draws = np.array([[0.99, 0.0], [0.5, 0.5]], "float32")
    got = diffaugment.translation(tf.constant(images), tf.constant(draws)).numpy()
    expected = np.zeros_like(images[0])
    expected[2:, : SIZE - 2] = images[0][: SIZE - 2, 2:]  # down 2 rows, left 2 columns
    np.testing.assert_array_equal(got[0], expected)
    np.testing.assert_array_equal(got[1], images[1])  # 0.5 → no shift


def test_cutout_zeroes_a_square_of_half_the_side_clipped_at_the_edges():
    images = _images(2) + 2.0  # no pixel is zero before the cutout
    draws = np.array([[0.5, 0.5], [0.0, 0.99]], "float32")
    got = diffaugment.cutout(tf.constant(images), tf.constant(draws)).numpy()
    holes = np.all(got == 0, axis=3)
    centred = np.zeros((SIZE, SIZE), bool)
    centred[4:12, 4:12] = True  # centre (8, 8), side 8
    np.testing.assert_array_equal(holes[0], centred)
    corner = np.zeros((SIZE, SIZE), bool)
    corner[0:4, 11:16] = True  # centre (0, 15): rows -4 … 3 and columns 11 … 18, clipped
    np.testing.assert_array_equal(holes[1], corner)
    np.testing.assert_array_equal(got[~holes], images[~holes])


def test_the_transforms_are_the_ones_params_accept():
    assert tuple(diffaugment._TRANSFORMS) == AUGMENTATIONS


def test_draws_follow_the_seed_and_not_the_split_over_replicas():
    images, seed = tf.constant(_images(4)), tf.constant([3, 7], tf.int64)
    whole = diffaugment.augment(images, AUGMENTATIONS, seed, (0, 4)).numpy()
    halves = [
        diffaugment.augment(images[start : start + 2], AUGMENTATIONS, seed, (start, 4)).numpy()
        for start in (0, 2)
    ]
    np.testing.assert_array_equal(whole, np.concatenate(halves))
    again = diffaugment.augment(images, AUGMENTATIONS, seed, (0, 4)).numpy()
    np.testing.assert_array_equal(whole, again)
    other = diffaugment.augment(images, AUGMENTATIONS, seed + 1, (0, 4)).numpy()
    assert not np.array_equal(whole, other)
    assert not np.array_equal(whole[0], whole[1])  # each image draws its own


def test_the_gradient_runs_back_through_every_transform():
    images = tf.Variable(_images(2))
    with tf.GradientTape() as tape:
        out = diffaugment.augment(images, AUGMENTATIONS, tf.constant([0, 1], tf.int64), (0, 2))
        loss = tf.reduce_sum(out**2)
    gradient = tape.gradient(loss, images).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0


def test_augmentations_keep_bfloat16():
    images = tf.constant(_images(2), tf.bfloat16)
    out = diffaugment.augment(images, AUGMENTATIONS, tf.constant([0, 1], tf.int64), (0, 2))
    assert out.dtype == tf.bfloat16


@pytest.mark.parametrize(
    "augment, message",
    [
        (["cutout", "color"], "in the order color, translation, cutout"),
        (["color", "color"], "each transform once"),
        (["flip"], "must be one of color, translation, cutout"),
    ],
)
def test_params_refuse_repeated_misordered_or_unknown_transforms(augment, message):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["train"]["augment"] = augment
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)
