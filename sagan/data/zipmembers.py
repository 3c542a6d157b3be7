"""Read single members of a zip archive in place, from worker processes.

``zipfile.ZipFile`` parses the whole central directory when opened (0.1 s for CelebA's
202,599 entries) and cannot be pickled, so it cannot be opened per image nor handed to
a worker. The parent lists the archive once; a worker gets a :class:`ZipMember` (where
the member's bytes start and how they are packed) and reads just those bytes.
"""

from __future__ import annotations

import bz2
import struct
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, 22 bytes we skip, name and extra lengths
LOCAL_SIGNATURE = b"PK\x03\x04"
ENCRYPTED_FLAG = 0x1
# Far above any photo (a CelebA JPEG is 10 KB), far below a worker's memory: an entry that
# declares more is a zip bomb or no image, refused before a byte is inflated.
MAX_MEMBER_BYTES = 256 * 2**20


class ZipMember(NamedTuple):
    """One file entry of an archive, as its central directory describes it."""

    name: str
    header_offset: int
    compress_type: int
    compress_size: int
    file_size: int
    crc: int
    flag_bits: int


def list_members(path: Path) -> list[ZipMember]:
    """Every file entry (directories left out), in archive order.

    Raises ``zipfile.BadZipFile`` or ``OSError`` for an unreadable archive.
    """
    with zipfile.ZipFile(path) as archive:
        return [
            ZipMember(
                info.filename,
                info.header_offset,
                info.compress_type,
                info.compress_size,
                info.file_size,
                info.CRC,
                info.flag_bits,
            )
            for info in archive.infolist()
            if not info.is_dir()
        ]


def read_member(path: Path, member: ZipMember) -> bytes:
    """The member's uncompressed bytes, CRC-checked; ``ValueError`` if they cannot be had."""
    if member.flag_bits & ENCRYPTED_FLAG:
        raise ValueError("encrypted zip entry")
    if member.file_size > MAX_MEMBER_BYTES:
        raise ValueError(
            f"zip entry declares {member.file_size} bytes uncompressed, more than the "
            f"{MAX_MEMBER_BYTES} an image may have (a zip bomb?)"
        )
    with open(path, "rb") as archive:
        archive.seek(member.header_offset)
        header = archive.read(LOCAL_HEADER.size)
        if len(header) < LOCAL_HEADER.size or header[:4] != LOCAL_SIGNATURE:
            raise ValueError(f"no local file header at offset {member.header_offset}")
        _, name_length, extra_length = LOCAL_HEADER.unpack(header)
        archive.seek(name_length + extra_length, 1)
        packed = archive.read(member.compress_size)
    data = _unpack(packed, member)
    if len(data) != member.file_size or zlib.crc32(data) != member.crc:
        raise ValueError("zip entry is truncated or its CRC does not match")
    return data


def _unpack(packed: bytes, member: ZipMember) -> bytes:
    if member.compress_type == zipfile.ZIP_STORED:
        return packed
    # max_length stops a zip bomb that lies about its size at the size it declares.
    if member.compress_type == zipfile.ZIP_DEFLATED:
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(packed, member.file_size + 1)
    if member.compress_type == zipfile.ZIP_BZIP2:
        return bz2.BZ2Decompressor().decompress(packed, member.file_size + 1)
    raise ValueError(f"unsupported zip compression method {member.compress_type}")
