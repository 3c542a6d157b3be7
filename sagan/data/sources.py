"""What prepare reads: a :class:`Listing` of items per split and a picklable loader for them.

Listing happens in the parent process; loading (decode, crop, resize or render) in worker
processes, so loaders are top-level functions bound with ``functools.partial``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from sagan.config import ConfigError, DataConfig
from sagan.data import synthetic
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
    splits: dict[str, Split]  # "train", then "test"
    load: Callable[[Item], Loaded]
    ignored: dict[str, list[str]] = field(default_factory=dict)  # reason -> names never loaded


def list_source(config: DataConfig) -> Listing:
    """The listing of ``data.source``; raises ConfigError or DataError naming the problem."""
    if config.source == "synthetic":
        return list_synthetic(config)
    if config.source == "folder":
        from sagan.data.folder import list_folder

        return list_folder(config)
    if config.source == "tfds":
        # tensorflow_datasets takes seconds to import: only this source pays for it.
        from sagan.data.tfds_source import list_tfds

        return list_tfds(config)
    raise ConfigError(f"data.source must be one of synthetic, folder, tfds, got {config.source!r}")


def square_spec(config: DataConfig) -> SquareSpec:
    """The crop and resize that data.image_size, data.crop_size and data.small_images ask for."""
    return SquareSpec(config.image_size, config.crop_size, config.small_images == "upsample")


def list_synthetic(config: DataConfig) -> Listing:
    """Faces 0..num_train-1 for train, the next num_test for test."""
    for key in ("num_train", "num_test"):
        if getattr(config, key) is None:
            raise ConfigError(f"data.{key} must be a positive integer for data.source synthetic")
    bounds = {
        "train": (0, config.num_train),
        "test": (config.num_train, config.num_train + config.num_test),
    }
    splits = {
        split: Split((Item(f"synthetic/{i:06d}", None, i) for i in range(*span)), span[1] - span[0])
        for split, span in bounds.items()
    }
    return Listing(
        attribute_names=synthetic.ATTRIBUTE_NAMES,
        attribute_classes=tuple(synthetic.ATTRIBUTE_CLASSES.values()),
        splits=splits,
        load=functools.partial(render_synthetic, config.seed, config.image_size),
    )


def render_synthetic(seed: int, image_size: int, item: Item) -> Loaded:
    image, labels = synthetic.render_face(seed, item.ref, image_size)
    return Loaded(item.name, image.tobytes(), tuple(labels.tolist()))


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
