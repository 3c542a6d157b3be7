"""The synthetic faces' background, read from the pixels instead of by the encoder.

The synthetic faces lie on a flat background of one of four colours
(:data:`sagan.data.synthetic.BACKGROUNDS`), and neither the head, the hair nor the shirt
reaches the two top corners or the left and right edges a quarter down, whatever the pose.
So the background can be read at those four patches exactly: for a real face it is its
label. A generated face fails in ways that the encoder, which must name one class, hides:
one side of one colour and the other of another (two modes blended into one face: common
early in training), or a colour near none of the four. Those faces read as
:data:`UNSURE`.
"""

from __future__ import annotations

import numpy as np

from sagan.data.manifest import Manifest
from sagan.data.synthetic import BACKGROUNDS
from sagan.evaluation import attribute_coverage

ATTRIBUTE = "background"
UNSURE = attribute_coverage.UNSURE  # the four patches disagree, or one is near no colour
# Largest RGB distance from a background colour that still reads as it: under half the
# distance between the two closest colours (blue and purple, 56.6 apart), so no colour reads
# as two.
TOLERANCE = 25.0
BACKGROUND_UNSURE = "background_unsure"  # the score: the share of faces read as UNSURE


def patch_colours(images: np.ndarray) -> np.ndarray:
    """The mean colour (N, 4, 3) of four squares of 1/16 of the side, 1 px in from the edge:
    the top left and right corners, and the left and right edges a quarter down."""
    images = np.asarray(images, np.float64)
    size = images.shape[1]
    side = max(2, size // 16)
    rows = (1, size // 4)
    columns = (1, size - 1 - side)
    patches = [
        images[:, row : row + side, column : column + side].mean(axis=(1, 2))
        for row in rows
        for column in columns
    ]
    return np.stack(patches, axis=1)


def read_backgrounds(images: np.ndarray) -> np.ndarray:
    """Each face's background class (N,), or UNSURE; ``images`` uint8 (N, S, S, 3)."""
    palette = np.asarray(BACKGROUNDS, np.float64)  # (C, 3)
    patches = patch_colours(images)  # (N, 4, 3)
    distances = np.linalg.norm(patches[:, :, None, :] - palette[None, None], axis=-1)  # (N,4,C)
    nearest = distances.argmin(axis=-1)  # (N, 4)
    close = distances.min(axis=-1) <= TOLERANCE  # (N, 4)
    agreed = (nearest == nearest[:, :1]).all(axis=1) & close.all(axis=1)
    return np.where(agreed, nearest[:, 0], UNSURE)


def reads_backgrounds(manifest: Manifest) -> bool:
    """Whether the prepared data is the synthetic faces, whose background pixels tell it."""
    return manifest.source == "synthetic" and ATTRIBUTE in manifest.attribute_names


def with_read_backgrounds(
    manifest: Manifest, images: np.ndarray, classes: np.ndarray
) -> np.ndarray:
    """``classes`` (N, A) with the background column read from the pixels of ``images``,
    where the data is the synthetic faces; as they are otherwise."""
    if not reads_backgrounds(manifest):
        return classes
    classes = np.array(classes)
    classes[:, manifest.attribute_names.index(ATTRIBUTE)] = read_backgrounds(images)
    return classes
