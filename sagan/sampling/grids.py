"""Images out of the generator: [-1, 1] floats to uint8, grids, PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sagan.files import atomic_path


def to_uint8(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) floats in [-1, 1] → uint8 in [0, 255], rounded."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(images: np.ndarray, columns: int) -> np.ndarray:
    """Tile (N, H, W, 3) uint8 images row by row into one (rows·H, columns·W, 3) image."""
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    padded = np.zeros((rows * columns, height, width, channels), images.dtype)
    padded[:count] = images
    tiles = padded.reshape(rows, columns, height, width, channels)
    return tiles.transpose(0, 2, 1, 3, 4).reshape(rows * height, columns * width, channels)


def save_png(image: np.ndarray, path: Path) -> None:
    """Write a uint8 (H, W, 3) image as PNG, atomically."""
    with atomic_path(path) as temporary:
        # Level 1: 1.4× faster than the default 6 on 64×64 faces, files 5% larger.
        Image.fromarray(image).save(temporary, format="PNG", compress_level=1)


def upsample_nearest(images: np.ndarray, size: int) -> np.ndarray:
    """(N, s, s, C) images → (N, size, size, C), each pixel repeated (size a multiple of s)."""
    factor = size // images.shape[1]
    return images.repeat(factor, axis=1).repeat(factor, axis=2)
