"""The ``folder`` source: images in a directory tree or in a ``.zip`` read in place (CelebA).

Order and split are functions of ``data.seed`` and the file names only: files are ordered
by a seeded hash of their relative name (a shuffle that survives added files), CelebA's
``list_eval_partition.txt`` beside the data decides the split when present, otherwise the
first ``data.num_test`` files of that order are the test split and the next
``data.num_validation`` the validation split.
"""

from __future__ import annotations

import functools
import hashlib
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from sagan.config import ConfigError, DataConfig
from sagan.data import celeba
from sagan.data.errors import DataError
from sagan.data.images import IMAGE_SUFFIXES, SquareSpec, square_from_bytes
from sagan.data.listing import Item, Listing, Loaded, Split, load_guarded, square_spec
from sagan.data.zipmembers import ZipMember, list_members, read_member


def list_folder(config: DataConfig) -> Listing:
    root = _existing_path(config.path)
    refs, load = _entries(root, square_spec(config))
    ignored: dict[str, list[str]] = {}
    for name in list(refs):
        reason = ignore_reason(name)
        if reason:
            del refs[name]
            # Escaped: a name that is not UTF-8 could not be written to the manifest.
            ignored.setdefault(reason, []).append(
                os.fsencode(name).decode(errors="backslashreplace")
            )
    if not refs:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in data.path {root}")
    ordered = sorted(refs, key=functools.partial(_shuffle_key, config.seed))
    attributes = _attributes(root, ordered, ignored)
    labelled = [name for name in ordered if name in attributes.rows]
    splits = _split(root, labelled, config, ignored)
    return Listing(
        attribute_names=attributes.names,
        attribute_classes=(2,) * len(attributes.names),
        splits={
            split: Split([Item(n, attributes.rows[n], refs[n]) for n in names], len(names))
            for split, names in splits.items()
        },
        load=load,
        ignored=ignored,
    )


def ignore_reason(name: str) -> str | None:
    """Why an entry is no image to prepare, or None. Nothing is ever written under its name."""
    # Plain string operations: pathlib costs seconds over CelebA's 202,599 names.
    parts = name.replace("\\", "/").split("/")
    if parts[0] == "" or parts[0].endswith(":") or ".." in parts:
        return "unsafe path (absolute or with ..)"
    try:
        name.encode()  # os.walk turns bytes that are not UTF-8 into unencodable surrogates
    except UnicodeEncodeError:
        return "file name is not valid UTF-8"
    if "__MACOSX" in parts or parts[-1].startswith("._"):
        return "macOS metadata"
    if os.path.splitext(parts[-1])[1].lower() not in IMAGE_SUFFIXES:
        return "not an image file name"
    return None


def load_file(root: Path, spec: SquareSpec, item: Item) -> Loaded:
    return load_guarded(item, lambda: square_from_bytes((root / item.ref).read_bytes(), spec))


def load_zip_member(archive: Path, spec: SquareSpec, item: Item) -> Loaded:
    return load_guarded(item, lambda: square_from_bytes(read_member(archive, item.ref), spec))


def _existing_path(path: str) -> Path:
    root = Path(path)  # never None for data.source folder: sagan/config.py checks it
    if not root.exists():
        raise DataError(f"data.path {root} does not exist")
    return root


def _entries(root: Path, spec: SquareSpec) -> tuple[dict[str, Any], Callable[[Item], Loaded]]:
    """Relative name -> what the loader reads, for every file; and that loader."""
    if root.is_dir():
        return {name: name for name in _walk(root)}, functools.partial(load_file, root, spec)
    members = _zip_members(root)
    return {m.name: m for m in members}, functools.partial(load_zip_member, root, spec)


def _walk(root: Path) -> list[str]:
    """Relative POSIX names of every file under ``root``."""
    names = []
    for directory, _, files in os.walk(root):
        relative = Path(directory).relative_to(root)
        names.extend((relative / file).as_posix() for file in files)
    return names


def _zip_members(path: Path) -> list[ZipMember]:
    try:
        return list_members(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise DataError(f"data.path {path} is not a readable directory or .zip: {error}") from error


def _shuffle_key(seed: int, name: str) -> bytes:
    return hashlib.sha256(f"{seed}/{name}".encode()).digest()


class _Attributes(NamedTuple):
    names: tuple[str, ...]  # empty without list_attr_celeba.txt
    rows: dict[str, tuple[int, ...]]  # relative file name -> labels, for every labelled file


def _attributes(root: Path, names: list[str], ignored: dict[str, list[str]]) -> _Attributes:
    path = _beside(root, celeba.ATTRIBUTE_FILE)
    if path is None:
        return _Attributes((), {name: () for name in names})
    attribute_names, by_base = celeba.read_attributes(path)
    rows = {}
    for name in names:
        row = by_base.get(_base_name(name))
        if row is None:
            ignored.setdefault(f"no row in {path.name}", []).append(name)
        else:
            rows[name] = row
    return _Attributes(attribute_names, rows)


def _split(
    root: Path, names: list[str], config: DataConfig, ignored: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Names per split, each capped at data.num_train / data.num_test."""
    path = _beside(root, celeba.PARTITION_FILE)
    if path is not None:
        partition = celeba.read_partition(path)
        splits: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
        for name in names:
            split = partition.get(_base_name(name))
            if split is None:
                ignored.setdefault(f"no row in {path.name}", []).append(name)
            else:
                splits[split].append(name)
    else:
        splits = _held_out_first(root, names, config)
    caps = {
        "train": config.num_train,
        "validation": config.num_validation,
        "test": config.num_test,
    }
    return {split: chosen[: caps[split]] for split, chosen in splits.items()}


def _held_out_first(root: Path, names: list[str], config: DataConfig) -> dict[str, list[str]]:
    """Without a partition file: data.num_test test images, then data.num_validation
    validation images, from the front of the seeded order; the rest train."""
    for key in ("num_test", "num_validation"):
        if getattr(config, key) is None:
            raise ConfigError(
                f"data.{key} must be a number: {root} has no {celeba.PARTITION_FILE} beside it"
            )
    held_out = config.num_test + config.num_validation
    if len(names) <= held_out:
        raise DataError(
            f"data.path {root} has {len(names)} images, all taken by data.num_test="
            f"{config.num_test} and data.num_validation={config.num_validation}; lower them"
        )
    return {
        "train": names[held_out:],
        "validation": names[config.num_test : held_out],
        "test": names[: config.num_test],
    }


def _base_name(name: str) -> str:
    """``000001.jpg`` for ``img_align_celeba/000001.jpg``: how CelebA's text files name images."""
    return name.rsplit("/", 1)[-1]


def _beside(root: Path, file_name: str) -> Path | None:
    """``file_name`` next to the zip or folder, or inside the folder."""
    for candidate in (root.parent / file_name, root / file_name):
        if candidate.is_file():
            return candidate
    return None
