"""DiffAugment (Zhao et al. 2020): differentiable augmentations of D's real and fake inputs.

D sees every image, real and fake, through the same random family of transforms, and G's
gradient flows back through them, so D cannot memorise the few real images it sees and G
is not pushed to draw the augmentations. Each transform draws independently per image:

- ``color``: brightness ``x + (b − ½)``; saturation ``m_c + (x − m_c)·2s`` around the
  per-pixel channel mean; contrast ``m + (x − m)·(c + ½)`` around the image mean;
  b, s, c ~ U(0, 1). On images in [-1, 1], as the authors' code.
- ``translation``: a shift by up to ⅛ of the side in each axis, zeros shifted in.
- ``cutout``: a square of half the side, centred anywhere in the image, set to zero.

Consistency regularisation (``train.consistency_weight``) takes its T from here too:
:func:`consistency_transform`, a left-right flip and a translation.

Randomness is stateless: a seed gives the same transforms on every run and resume.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from sagan import randomness

TRANSLATION_FRACTION = 1 / 8
CUTOUT_FRACTION = 1 / 2


def color(images: tf.Tensor, draws: tf.Tensor) -> tf.Tensor:
    """Brightness, saturation and contrast from ``draws`` (B, 3) in [0, 1)."""
    brightness, saturation, contrast = (
        tf.reshape(tf.cast(draws[:, i], images.dtype), (-1, 1, 1, 1)) for i in range(3)
    )
    images = images + (brightness - 0.5)
    channel_mean = tf.reduce_mean(images, axis=3, keepdims=True)
    images = channel_mean + (images - channel_mean) * (2.0 * saturation)
    image_mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return image_mean + (images - image_mean) * (contrast + 0.5)


def _shift_axis(images: tf.Tensor, shifts: tf.Tensor, axis: int) -> tf.Tensor:
    """Each image moved by its own whole-pixel shift along ``axis`` (1 rows, 2 columns)."""
    size = images.shape[axis]
    source = tf.range(size)[tf.newaxis, :] - shifts[:, tf.newaxis]  # (B, size)
    inside = (source >= 0) & (source < size)
    moved = tf.gather(images, tf.clip_by_value(source, 0, size - 1), axis=axis, batch_dims=1)
    mask_shape = (-1, size, 1, 1) if axis == 1 else (-1, 1, size, 1)
    return moved * tf.cast(tf.reshape(inside, mask_shape), images.dtype)


def translation(images: tf.Tensor, draws: tf.Tensor) -> tf.Tensor:
    """A shift of −limit … limit pixels per axis, from ``draws`` (B, 2) in [0, 1)."""
    limit = int(images.shape[1] * TRANSLATION_FRACTION + 0.5)
    shifts = tf.cast(tf.floor(draws * (2 * limit + 1)), tf.int32) - limit
    return _shift_axis(_shift_axis(images, shifts[:, 0], axis=1), shifts[:, 1], axis=2)


def cutout(images: tf.Tensor, draws: tf.Tensor) -> tf.Tensor:
    """A zeroed square whose centre is drawn from ``draws`` (B, 2) in [0, 1)."""
    size = images.shape[1]
    side = int(size * CUTOUT_FRACTION + 0.5)
    corners = tf.cast(tf.floor(draws * size), tf.int32) - side // 2  # (B, 2): top, left
    positions = tf.range(size)[tf.newaxis, :]

    def covered(corner):  # (B, size): positions inside [corner, corner + side)
        return (positions >= corner[:, tf.newaxis]) & (positions < corner[:, tf.newaxis] + side)

    rows, columns = covered(corners[:, 0]), covered(corners[:, 1])
    hole = rows[:, :, tf.newaxis] & columns[:, tf.newaxis, :]  # (B, size, size)
    return images * tf.cast(~hole, images.dtype)[..., tf.newaxis]


def flip(images: tf.Tensor, draws: tf.Tensor) -> tf.Tensor:
    """A left-right mirror image where ``draws`` (B, 1) in [0, 1) is below ½."""
    flipped = tf.reshape(draws[:, 0] < 0.5, (-1, 1, 1, 1))
    return tf.where(flipped, tf.reverse(images, axis=[2]), images)


# Each transform with the number of uniform draws it takes per image: DiffAugment's, in the
# order they apply, then the flip that consistency regularisation adds.
_TRANSFORMS = {"color": (color, 3), "translation": (translation, 2), "cutout": (cutout, 2)}
_ALL_TRANSFORMS = _TRANSFORMS | {"flip": (flip, 1)}
CONSISTENCY = ("flip", "translation")  # T of consistency regularisation (Zhang et al. 2020)


def augment(
    images: tf.Tensor, transforms: Sequence[str], seed: tf.Tensor, rows: tuple[int, int]
) -> tf.Tensor:
    """``images`` through each of ``transforms`` in order, with draws from ``seed``.

    ``rows`` is ``(start, total)``: ``images`` are rows ``start`` to ``start + B`` of a
    global batch of ``total``. Every draw is made for the whole batch and sliced, so each
    image is transformed alike however the batch is split over replicas.
    """
    start, total = rows
    batch = tf.shape(images)[0]
    seeds = randomness.split(seed, len(transforms))
    for index, name in enumerate(transforms):
        function, width = _ALL_TRANSFORMS[name]
        draws = randomness.uniform((total, width), seeds[index])
        images = function(images, draws[start : start + batch])
    return images


def consistency_transform(images: tf.Tensor, seed: tf.Tensor, rows: tuple[int, int]) -> tf.Tensor:
    """T(x) of consistency regularisation: a random mirror image, then a random shift (by up to
    ⅛ of the side, as DiffAugment's translation). ``rows`` as in :func:`augment`."""
    return augment(images, CONSISTENCY, seed, rows)
