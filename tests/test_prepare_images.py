"""Decoding one image: colour modes, centre crop, JPEG draft, small images; zip members."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sagan.data.folder import ignore_reason
from sagan.data.images import SmallImageError, SquareSpec, square_from_bytes
from sagan.data.zipmembers import list_members, read_member
from tests.celeba_standin import random_jpeg

RED = (255, 0, 0)
SPEC = SquareSpec(image_size=8, crop_size=None, upsample_small=True)


def _encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_rgb16(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), chunk by chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)  # filter 0 per row
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # 16 bit, colour type RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _colour(data: bytes) -> np.ndarray:
    return square_from_bytes(data, SPEC).reshape(-1, 3).mean(axis=0)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_encode(Image.new("L", (10, 10), 128)), (128, 128, 128)),
        (_encode(Image.new("1", (10, 10), 1)), (255, 255, 255)),
        (_encode(Image.new("RGB", (10, 10), RED).convert("P")), RED),
        (_encode(Image.new("RGB", (10, 10), RED).convert("CMYK"), "JPEG", quality=100), RED),
        (_encode(Image.new("RGBA", (10, 10), (*RED, 255))), RED),
        (_encode(Image.new("RGBA", (10, 10), (0, 0, 0, 0))), (255, 255, 255)),
        (_encode(Image.new("LA", (10, 10), (0, 0))), (255, 255, 255)),
        (_encode(Image.new("RGB", (10, 10), RED), "WEBP", lossless=True), RED),
        (_encode(Image.new("RGB", (10, 10), RED), "BMP"), RED),
        (_encode(Image.fromarray(np.full((10, 10), 0x8000, np.uint16))), (128, 128, 128)),
        (_png_rgb16(np.full((10, 10, 3), (0xFFFF, 0x8000, 0x0000))), (255, 128, 0)),
    ],
    ids=["grey", "bilevel", "palette", "cmyk-jpeg", "rgba", "transparent", "grey-alpha",
         "webp", "bmp", "grey-16bit", "rgb-16bit"],
)  # fmt: skip
def test_every_mode_becomes_the_right_rgb(data: bytes, expected: tuple[int, int, int]) -> None:
    np.testing.assert_allclose(_colour(data), expected, atol=3)


def test_palette_transparency_is_composited_over_white() -> None:
    image = Image.new("P", (10, 10), 0)
    image.putpalette([0, 0, 0] * 256)
    image.info["transparency"] = 0
    np.testing.assert_allclose(_colour(_encode(image)), (255, 255, 255), atol=1)


def test_the_centre_crop_keeps_the_centre_and_has_the_image_size() -> None:
    pixels = np.zeros((60, 40, 3), np.uint8)  # a red 20x20 square in the middle of black
    pixels[20:40, 10:30] = RED
    spec = SquareSpec(image_size=8, crop_size=20, upsample_small=True)
    out = square_from_bytes(_encode(Image.fromarray(pixels)), spec)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    # The bicubic kernel reaches a little past the crop, so the rim takes some black.
    np.testing.assert_allclose(out[1:-1, 1:-1].reshape(-1, 3).mean(axis=0), RED, atol=2)
    wider = square_from_bytes(_encode(Image.fromarray(pixels)), spec._replace(crop_size=40))
    assert wider[0, 0].max() < 10  # a 40-pixel crop reaches the black surround


def test_jpeg_draft_matches_a_full_decode() -> None:
    data = random_jpeg(np.random.default_rng(0), (178, 218))
    spec = SquareSpec(image_size=32, crop_size=140, upsample_small=True)
    fast = square_from_bytes(data, spec).astype(float)
    full = Image.open(io.BytesIO(data)).convert("RGB")  # no draft: decoded at full size
    box = ((178 - 140) / 2, (218 - 140) / 2, (178 + 140) / 2, (218 + 140) / 2)
    slow = np.asarray(full.resize((32, 32), Image.Resampling.BICUBIC, box=box), dtype=float)
    assert np.abs(fast - slow).mean() < 6  # DCT scaling differs slightly from a resize


def test_small_images_are_upsampled_or_refused() -> None:
    data = _encode(Image.new("RGB", (30, 20), RED))
    upsample = SquareSpec(image_size=64, crop_size=100, upsample_small=True)
    assert square_from_bytes(data, upsample).shape == (64, 64, 3)
    with pytest.raises(SmallImageError, match=r"30x20 is smaller than 100"):
        square_from_bytes(data, upsample._replace(upsample_small=False))


@pytest.mark.parametrize(
    ("data", "error"),
    [(b"", Image.UnidentifiedImageError), (b"not an image", Image.UnidentifiedImageError)],
)
def test_unreadable_bytes_raise(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        square_from_bytes(data, SPEC)


def test_a_truncated_jpeg_raises() -> None:
    data = random_jpeg(np.random.default_rng(1), (64, 64))
    with pytest.raises(OSError, match="truncated"):
        square_from_bytes(data[: len(data) // 2], SPEC)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_zip_members_are_read_in_place(tmp_path: Path, method: int) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("dir/", b"")
        archive.writestr("dir/one.bin", b"first" * 100)
        archive.writestr("two.bin", b"second")
    members = list_members(path)
    assert [m.name for m in members] == ["dir/one.bin", "two.bin"]
    assert [read_member(path, m) for m in members] == [b"first" * 100, b"second"]


def test_a_damaged_zip_member_raises(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("one.bin", b"x" * 100)
    (member,) = list_members(path)
    data = bytearray(path.read_bytes())
    data[member.header_offset + 40] ^= 0xFF  # a byte of the stored content
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="CRC"):
        read_member(path, member)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("img_align_celeba/000001.jpg", None),
        ("a/B.JPEG", None),
        ("../evil.jpg", "unsafe path (absolute or with ..)"),
        ("a/../../evil.png", "unsafe path (absolute or with ..)"),
        ("/etc/evil.png", "unsafe path (absolute or with ..)"),
        ("C:/evil.png", "unsafe path (absolute or with ..)"),
        ("..\\evil.png", "unsafe path (absolute or with ..)"),
        ("__MACOSX/img/._000001.jpg", "macOS metadata"),
        ("img/._000001.jpg", "macOS metadata"),
        ("README.txt", "not an image file name"),
        ("img/.DS_Store", "not an image file name"),
    ],
)
def test_entries_that_are_no_image_to_prepare(name: str, reason: str | None) -> None:
    assert ignore_reason(name) == reason
