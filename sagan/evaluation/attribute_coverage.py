"""Mode coverage by attribute: the classes the encoder reads on samples against real faces.

A generator that drops a mode (a background colour, glasses) shows it here plainly: per
attribute, the total variation distance between the class histograms of the generated and
the real test faces, and how many common classes the samples under-represent.
"""

from __future__ import annotations

import numpy as np

ATTRIBUTE_TV = "attribute_tv"  # mean over the attributes; attribute_tv_<name> each
ATTRIBUTE_TV_MAX = "attribute_tv_max"
DROPPED_CLASSES = "dropped_classes"
COMMON_SHARE = 0.05  # a class held by at least this share of the real faces is a mode...
DROPPED_RATIO = 0.5  # ...dropped when the samples hold under this fraction of its real share


UNSURE = -1  # an image whose class could not be read (sagan/evaluation/backgrounds.py)


def class_shares(classes: np.ndarray, num_classes: int) -> np.ndarray:
    """The share of images in each class 0..num_classes-1 of one attribute: (num_classes,).

    Images read as UNSURE count in the total and in no class, so the shares then sum to
    less than 1.
    """
    classes = np.asarray(classes)
    if classes.ndim != 1 or len(classes) == 0:
        raise ValueError(f"need a non-empty (N,) array of classes, got shape {classes.shape}")
    if classes.min() < UNSURE or classes.max() >= num_classes:
        raise ValueError(
            f"classes must lie in 0..{num_classes - 1} (or be {UNSURE}, unsure), "
            f"got {np.unique(classes)}"
        )
    return np.bincount(classes[classes != UNSURE], minlength=num_classes) / len(classes)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """TV(p, q) = ½ Σ_c |p_c − q_c| of two distributions over the same classes; shares that
    sum to less than 1 (unsure images) have the rest as one more class, "unsure"."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    return 0.5 * float(np.abs(p - q).sum() + abs(p.sum() - q.sum()))


def attribute_coverage(
    real_classes: np.ndarray, fake_classes: np.ndarray, attributes: dict[str, int]
) -> dict[str, float]:
    """``attribute_tv_<name>`` per attribute, their mean and max, and ``dropped_classes``.

    ``real_classes`` (N, A) and ``fake_classes`` (M, A) hold each image's class of every
    attribute in ``attributes`` (name → number of classes, in column order). A class is
    dropped when at least COMMON_SHARE of the real faces have it but under DROPPED_RATIO of
    that share of the samples do.
    """
    real_classes, fake_classes = np.asarray(real_classes), np.asarray(fake_classes)
    for name, array in (("real", real_classes), ("fake", fake_classes)):
        if array.ndim != 2 or array.shape[1] != len(attributes):
            raise ValueError(
                f"{name} classes must be (N, {len(attributes)}) for attributes "
                f"{tuple(attributes)}, got {array.shape}"
            )
    scores: dict[str, float] = {}
    dropped = 0
    for column, (name, num_classes) in enumerate(attributes.items()):
        real = class_shares(real_classes[:, column], num_classes)
        fake = class_shares(fake_classes[:, column], num_classes)
        scores[f"{ATTRIBUTE_TV}_{name}"] = total_variation(real, fake)
        dropped += int(((real >= COMMON_SHARE) & (fake < DROPPED_RATIO * real)).sum())
    per_attribute = list(scores.values())
    scores[ATTRIBUTE_TV] = float(np.mean(per_attribute))
    scores[ATTRIBUTE_TV_MAX] = float(np.max(per_attribute))
    scores[DROPPED_CLASSES] = dropped
    return scores
