"""The interface every feature extractor shares, and the batching loop they run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from tqdm import tqdm

PROGRESS_MIN_BATCHES = 10  # runs shorter than this many batches show no progress bar


class FeatureExtractor(Protocol):
    """Maps uint8 RGB images (N, H, W, 3) to feature vectors (N, D)."""

    name: str

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


def check_images(images: np.ndarray, image_size: int | None = None) -> np.ndarray:
    """``images`` if it is a uint8 (N, H, W, 3) array of ``image_size``²; else ValueError."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        kind = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise ValueError(f"images must be a uint8 numpy array (N, H, W, 3), got {kind}")
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, H, W, 3) RGB array, got {images.shape}")
    if image_size is not None and images.shape[1:3] != (image_size, image_size):
        raise ValueError(
            f"images are {images.shape[1]}x{images.shape[2]}, this extractor expects "
            f"{image_size}x{image_size} (data.image_size)"
        )
    return images


def run_batched(
    apply: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int, desc: str
) -> np.ndarray:
    """``apply`` over consecutive batches of ``images``, rows flattened and concatenated (N, D)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    starts = range(0, len(images), batch_size)
    progress = tqdm(starts, desc=desc, unit="batch", disable=len(starts) < PROGRESS_MIN_BATCHES)
    parts = [np.asarray(apply(images[start : start + batch_size])) for start in progress]
    return np.concatenate([part.reshape(len(part), -1) for part in parts])
