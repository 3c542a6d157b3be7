"""What every source hands prepare: a :class:`Listing` of items per split and a picklable loader.

Listing happens in the parent process; loading (decode, crop, resize or render) in worker
processes, so loaders are top-level functions bound with ``functools.partial``. A leaf of
``sagan.data``: every source imports these types, and this module imports no source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from sagan.config import DataConfig
from sagan.data.images import SmallImageError, SquareSpec, square_from_array


class Item(NamedTuple):
    """One image to prepare."""

    name: str  # the source file name stored in its record
    labels: tuple[int, ...] | None  # None: the loader provides them
    ref: Any  # what the loader reads: an index, a relative path, a ZipMember, an array


class Loaded(NamedTuple):
    """A loader's answer: the image, or why there is none."""

    name: str
    image: bytes | None  # raw uint8 (S, S, 3), row-major; None when skipped
    labels: tuple[int, ...]
    problem: str | None = None  # why it was skipped
    bad: bool = False  # unreadable (counts toward data.max_bad_fraction), not skipped by choice


class Split(NamedTuple):
    items: Iterable[Item]
    size: int  # how many items there are: for the progress bar and the bad-file budget


@dataclass(frozen=True)
class Listing:
    attribute_names: tuple[str, ...]
    attribute_classes: tuple[int, ...]
    splits: dict[str, Split]  # "train", "validation", "test"
    load: Callable[[Item], Loaded]
    ignored: dict[str, list[str]] = field(default_factory=dict)  # reason -> names never loaded
    coherence_pairs: tuple[tuple[str, str], ...] = ()  # (leader, follower) labels that agree


def square_spec(config: DataConfig) -> SquareSpec:
    """The crop and resize that data.image_size, data.crop_size and data.small_images ask for."""
    return SquareSpec(config.image_size, config.crop_size, config.small_images == "upsample")


def load_guarded(item: Item, make_square: Callable[[], np.ndarray]) -> Loaded:
    """Run ``make_square`` and turn any failure into a skipped :class:`Loaded`."""
    try:
        pixels = make_square()
    except SmallImageError as error:
        return Loaded(item.name, None, (), str(error))
    # Pillow and zlib raise many types on damaged input (OSError, SyntaxError, struct.error,
    # zlib.error, DecompressionBombError...); one bad file must never stop the run.
    except Exception as error:  # noqa: BLE001
        return Loaded(item.name, None, (), f"{type(error).__name__}: {error}", bad=True)
    return Loaded(item.name, pixels.tobytes(), item.labels or ())


def load_array(spec: SquareSpec, item: Item) -> Loaded:
    """The loader of already decoded ``(H, W, 3)`` uint8 arrays (tfds)."""
    return load_guarded(item, lambda: square_from_array(item.ref, spec))
