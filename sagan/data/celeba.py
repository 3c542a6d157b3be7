"""CelebA's annotation files: the official split and the 40 binary attributes.

``list_eval_partition.txt``: one ``000001.jpg 0`` row per image (0 train, 1 val, 2 test).
``list_attr_celeba.txt``: line 1 the image count, line 2 the 40 attribute names, then one
``000001.jpg -1  1 ...`` row per image with -1 (absent) or 1 (present).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sagan.data.errors import DataError

PARTITION_FILE = "list_eval_partition.txt"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
# val (1) is the split that training scores itself on (train.eval_every) and chooses its
# best checkpoint by, so that the test split stays unseen until evaluate.
PARTITIONS = {"0": "train", "1": "validation", "2": "test"}
LABELS = {"-1": 0, "1": 1}  # absent, present


def read_partition(path: Path) -> dict[str, str]:
    """File name -> "train", "validation" or "test"."""
    split = {}
    for number, fields in _rows(path, first_line=1):
        if len(fields) != 2 or fields[1] not in PARTITIONS:
            raise DataError(f"{path}:{number}: expected '<file name> <0, 1 or 2>', got {fields}")
        split[fields[0]] = PARTITIONS[fields[1]]
    return split


def read_attributes(path: Path) -> tuple[tuple[str, ...], dict[str, tuple[int, ...]]]:
    """The attribute names and, per file name, its labels with -1/1 mapped to 0/1."""
    lines = _read_lines(path)
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataError(f"{path}: expected the image count on line 1 and the names on line 2")
    names = tuple(lines[1].split())
    labels = {}
    for number, fields in _rows(path, first_line=3, lines=lines[2:]):
        values = fields[1:]
        if len(values) != len(names) or not set(values) <= LABELS.keys():
            raise DataError(
                f"{path}:{number}: expected a file name and {len(names)} values of -1 or 1, "
                f"got {len(values)} values"
            )
        labels[fields[0]] = tuple(map(LABELS.__getitem__, values))
    if len(labels) != int(lines[0]):
        count = lines[0].strip()
        raise DataError(f"{path}: line 1 says {count} images, the file has {len(labels)}")
    return names, labels


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path}: {error}") from error


def _rows(
    path: Path, first_line: int, lines: list[str] | None = None
) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank line, one at a time: CelebA has 202,599."""
    lines = _read_lines(path) if lines is None else lines
    for number, line in enumerate(lines, first_line):
        fields = line.split()
        if fields:
            yield number, fields
