"""Files every stage writes: atomic writes that leave nothing behind, JSON, sha256.

Every output of the pipeline is written through :func:`atomic_path` or
:func:`atomic_directory`: into a hidden temporary beside the target, renamed into place only
when the block succeeded, so a failure (or a kill) leaves the previous output intact. The
temporaries carry one prefix, :data:`TEMPORARY_PREFIX`, so that :func:`sweep_temporaries`
can remove what a killed run left without touching anything else.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TEMPORARY_PREFIX = ".sagan-tmp."  # every temporary file or folder of ours starts with it
_OLD_MARK = ".old."  # a directory being replaced: .sagan-tmp.<name>.old.<random>


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file path beside ``path`` (same suffix) that replaces it on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f"{TEMPORARY_PREFIX}{path.stem}.", suffix=path.suffix, dir=path.parent
    )
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextlib.contextmanager
def atomic_directory(directory: Path) -> Iterator[Path]:
    """A fresh hidden directory beside ``directory`` that replaces it whole on success."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    for stale in directory.parent.glob(f"{TEMPORARY_PREFIX}{directory.name}.*"):
        _remove(stale)
    staging = Path(
        tempfile.mkdtemp(prefix=f"{TEMPORARY_PREFIX}{directory.name}.", dir=directory.parent)
    )
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = staging.with_name(f"{TEMPORARY_PREFIX}{directory.name}{_OLD_MARK}{staging.name[-8:]}")
    if directory.exists():
        directory.rename(old)
    staging.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def sweep_temporaries(folder: Path) -> list[Path]:
    """Remove our temporaries (files and folders) anywhere under ``folder``; the removed paths.

    A stage calls it on the folders it owns before it writes: a run killed inside an atomic
    write leaves its temporary behind, and DVC would otherwise publish it as an output.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = sorted(folder.rglob(f"{TEMPORARY_PREFIX}*"))
    removed = []
    for path in stale:
        if any(parent in removed for parent in path.parents):
            continue  # inside a temporary folder already removed
        _remove(path)
        removed.append(path)
    return removed


def _remove(path: Path) -> None:
    logger.info("removing %s left by an interrupted run", path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_json(path: Path, value: Any) -> None:
    """``value`` as indented, key-sorted JSON (UTF-8, trailing newline), atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(
            json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks."""
    with Path(path).open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header row; none when the file does not exist."""
    if not Path(path).exists():
        return []
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` as CSV, the header every key in first-seen order, atomically."""
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_path(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
