"""The manifest of the prepared data: what prepare wrote, typed, read and written in one place.

``data/prepared/manifest.json`` holds the source, the image size, the attribute names and
classes, the attribute pairs that must agree (the synthetic faces' coherence pairs), each
split's count and shards (file, count, sha256), the skipped and ignored files, and the
``data`` params it was prepared with. No timestamps: the same params give the same bytes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagan.data.errors import DataError
from sagan.files import read_json, write_json
from sagan.paths import MANIFEST_NAME


@dataclass(frozen=True)
class Shard:
    file: str  # the shard's name inside the prepared folder
    count: int
    sha256: str


@dataclass(frozen=True)
class PreparedSplit:
    count: int
    shards: tuple[Shard, ...]


@dataclass(frozen=True)
class Skipped:
    file: str
    reason: str


@dataclass(frozen=True)
class Ignored:
    count: int
    examples: tuple[str, ...]  # the first few names, sorted


@dataclass(frozen=True)
class Manifest:
    source: str
    image_size: int
    attribute_names: tuple[str, ...]
    attribute_classes: tuple[int, ...]  # classes of each attribute, in the names' order
    coherence_pairs: tuple[tuple[str, str], ...]  # (leader, follower): labels that must agree
    splits: dict[str, PreparedSplit]  # "train", "validation", "test"
    skipped: tuple[Skipped, ...] = ()
    ignored: dict[str, Ignored] = field(default_factory=dict)  # reason -> names never loaded
    params: dict[str, Any] = field(default_factory=dict)  # the data params, less data.workers

    def __post_init__(self) -> None:
        if len(self.attribute_names) != len(self.attribute_classes):
            raise ValueError(
                f"{len(self.attribute_names)} attribute names but "
                f"{len(self.attribute_classes)} class counts"
            )
        unknown = {name for pair in self.coherence_pairs for name in pair}
        unknown -= set(self.attribute_names)
        if unknown:
            raise ValueError(f"coherence pairs name unknown attributes {sorted(unknown)}")

    @property
    def attributes(self) -> dict[str, int]:
        """Each attribute's name and its number of classes, in label order."""
        return dict(zip(self.attribute_names, self.attribute_classes, strict=True))

    def write(self, data_dir: Path) -> None:
        """``manifest.json`` in ``data_dir``, atomically."""
        write_json(Path(data_dir) / MANIFEST_NAME, dataclasses.asdict(self))

    @classmethod
    def read(cls, data_dir: str | Path) -> Manifest:
        """The manifest that prepare wrote into ``data_dir``; DataError naming it if unusable."""
        path = Path(data_dir) / MANIFEST_NAME
        try:
            raw = read_json(path)
        except (OSError, ValueError) as error:
            message = f"cannot read {path} ({error}); run `dvc repro prepare` first"
            raise DataError(message) from error
        try:
            return cls._from_json(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise DataError(
                f"{path} is not a manifest this version of prepare writes "
                f"({type(error).__name__}: {error}); rerun `dvc repro prepare`"
            ) from error

    @classmethod
    def _from_json(cls, raw: dict[str, Any]) -> Manifest:
        return cls(
            source=str(raw["source"]),
            image_size=int(raw["image_size"]),
            attribute_names=tuple(str(name) for name in raw["attribute_names"]),
            attribute_classes=tuple(int(classes) for classes in raw["attribute_classes"]),
            coherence_pairs=tuple((str(a), str(b)) for a, b in raw["coherence_pairs"]),
            splits={
                name: PreparedSplit(
                    int(split["count"]), tuple(Shard(**shard) for shard in split["shards"])
                )
                for name, split in raw["splits"].items()
            },
            skipped=tuple(Skipped(**entry) for entry in raw["skipped"]),
            ignored={
                reason: Ignored(int(info["count"]), tuple(info["examples"]))
                for reason, info in raw["ignored"].items()
            },
            params=dict(raw["params"]),
        )
