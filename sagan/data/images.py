"""One image file to one square RGB uint8 array: colour conversion, centre crop, antialiased resize.

Pure functions of Pillow and NumPy (no TensorFlow), so worker processes start quickly.
"""

from __future__ import annotations

import io
import math
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
BACKGROUND = (255, 255, 255)  # transparent pixels are composited over white
# Pillow's bicubic widens its kernel by the downscale factor, so shrinking is antialiased.
RESAMPLE = Image.Resampling.BICUBIC


class SmallImageError(ValueError):
    """An image whose shorter side is under the crop, with ``small_images: skip``."""


class SquareSpec(NamedTuple):
    """How to cut a square out of an image: the params that shape every prepared image."""

    image_size: int  # output side in pixels (data.image_size)
    crop_size: int | None  # centred square side in source pixels; None = the shorter side
    upsample_small: bool  # data.small_images == "upsample"


def square_from_bytes(data: bytes, spec: SquareSpec) -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, WebP, BMP) to ``(S, S, 3)`` uint8 RGB.

    Raises whatever Pillow raises for an unreadable file, or :class:`SmallImageError`.
    """
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        side = _source_side(width, height, spec)
        # JPEG only: let the decoder downscale by 1/2, 1/4 or 1/8 in the DCT while it still
        # leaves at least image_size pixels across the crop; far cheaper than a full decode.
        shrink = spec.image_size / side
        image.draft(None, (math.ceil(width * shrink), math.ceil(height * shrink)))
        scale = image.size[0] / width
        ImageOps.exif_transpose(image, in_place=True)
        return _cut_square(_to_rgb(image), side * scale, spec.image_size)


def square_from_array(pixels: np.ndarray, spec: SquareSpec) -> np.ndarray:
    """:func:`square_from_bytes` for an already decoded ``(H, W, 3)`` uint8 array."""
    height, width = pixels.shape[:2]
    side = _source_side(width, height, spec)
    return _cut_square(Image.fromarray(pixels, "RGB"), side, spec.image_size)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB: grey, palette, CMYK, 16-bit, with alpha."""
    if image.mode in SIXTEEN_BIT_MODES:
        # Pillow's convert("L") clips 16-bit values at 255 instead of scaling them down.
        grey = np.clip(np.asarray(image), 0, 65535).astype(np.uint16) >> 8
        return Image.fromarray(grey.astype(np.uint8), "L").convert("RGB")
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _source_side(width: int, height: int, spec: SquareSpec) -> float:
    """The side of the centred square to cut, in source pixels."""
    shorter = min(width, height)
    wanted = spec.crop_size or spec.image_size
    if shorter < wanted and not spec.upsample_small:
        raise SmallImageError(
            f"{width}x{height} is smaller than {wanted} (data.crop_size or data.image_size) "
            "and data.small_images is skip"
        )
    return min(spec.crop_size or shorter, shorter)


def _cut_square(image: Image.Image, side: float, image_size: int) -> np.ndarray:
    width, height = image.size
    left, top = (width - side) / 2, (height - side) / 2
    box = (left, top, left + side, top + side)  # fractional boxes are resampled exactly
    resized = image.resize((image_size, image_size), RESAMPLE, box=box)
    return np.asarray(resized, dtype=np.uint8)
