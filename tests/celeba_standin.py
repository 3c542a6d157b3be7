"""Stand-ins for CelebA's files, for tests and benchmarks (CelebA itself cannot be fetched here).

:func:`write_celeba_standin` writes ``img_align_celeba.zip`` with the real entry names
(``img_align_celeba/000001.jpg`` ...) and, beside it, ``list_eval_partition.txt`` and
``list_attr_celeba.txt`` in the real formats, split in the official proportions.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sagan.data.celeba import ATTRIBUTE_FILE, PARTITION_FILE

ZIP_NAME = "img_align_celeba.zip"
ZIP_FOLDER = "img_align_celeba"
CELEBA_SIZE = (178, 218)  # width, height of the aligned images
CELEBA_COUNT = 202_599
VAL_START, TEST_START = 162_770, 182_637  # the official split: 0-based first val and test index
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)


def celeba_name(index: int) -> str:
    """The file name of 0-based image ``index``: ``000001.jpg`` for 0."""
    return f"{index + 1:06d}.jpg"


def celeba_partition(index: int, count: int) -> int:
    """0 train, 1 val, 2 test for image ``index`` of ``count``, in the official proportions."""
    position = index * CELEBA_COUNT / count
    return 0 if position < VAL_START else 1 if position < TEST_START else 2


def random_jpeg(rng: np.random.Generator, size: tuple[int, int], quality: int = 90) -> bytes:
    """A face-sized JPEG of smooth shapes and mild noise, about as costly to decode as a photo."""
    width, height = size
    image = Image.new("RGB", size, tuple(rng.integers(0, 256, 3).tolist()))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.integers(0, width), rng.integers(0, height)
        rx, ry = rng.integers(5, width // 2), rng.integers(5, height // 2)
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=tuple(rng.integers(0, 256, 3).tolist()))
    noise = rng.normal(0, 6, (height, width, 3))
    pixels = np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def write_celeba_standin(
    directory: Path,
    count: int,
    size: tuple[int, int] = CELEBA_SIZE,
    variants: int | None = None,
    seed: int = 0,
) -> Path:
    """Write the zip and both annotation files into ``directory``; return the zip's path.

    ``variants`` distinct JPEGs are cycled through (all distinct when None), which keeps
    a CelebA-sized archive quick to generate while every entry is still decoded in full.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    jpegs = [random_jpeg(rng, size) for _ in range(min(count, variants or count))]
    labels = rng.choice(np.array([-1, 1]), size=(count, len(CELEBA_ATTRIBUTES)))
    path = directory / ZIP_NAME
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for index in range(count):
            archive.writestr(f"{ZIP_FOLDER}/{celeba_name(index)}", jpegs[index % len(jpegs)])
    partition = [f"{celeba_name(i)} {celeba_partition(i, count)}\n" for i in range(count)]
    (directory / PARTITION_FILE).write_text("".join(partition))
    rows = [
        f"{celeba_name(i)} " + " ".join(f"{value:2d}" for value in labels[i]) + "\n"
        for i in range(count)
    ]
    header = f"{count}\n" + " ".join(CELEBA_ATTRIBUTES) + " \n"
    (directory / ATTRIBUTE_FILE).write_text(header + "".join(rows))
    return path
