"""Prepare: any source -> ``{train,test}-NNNNN-of-MMMMM.tfrecord`` shards + ``manifest.json``.

Images stream from a process pool (decode, crop, resize or render) through an ordered map
into the shard writer, so memory stays bounded whatever the dataset size and the output
does not depend on the number of workers. Everything is written into a hidden staging
directory beside ``out_dir`` and renamed into place at the end (``sagan.files``): a run
killed mid-way leaves no shard or manifest that looks complete.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from sagan.config import DataConfig
from sagan.data.errors import DataError
from sagan.data.listing import Listing, Loaded
from sagan.data.sources import list_source
from sagan.files import atomic_directory, write_json
from sagan.paths import MANIFEST_NAME

log = logging.getLogger(__name__)
T, R = TypeVar("T"), TypeVar("R")

WINDOW = 1024  # items in flight per window; two windows bound the memory held by results
CHUNKSIZE = 16  # items per worker task: amortises the pickling round trip
EXAMPLES = 5  # file names quoted per reason in errors and in the manifest's "ignored"


def prepare(config: DataConfig, out_dir: Path) -> dict[str, Any]:
    """Write the shards and manifest of ``config`` into ``out_dir``; return the manifest.

    Raises ConfigError or DataError naming the params key, path or files at fault.
    """
    # TensorFlow is imported here, not at the top: pool workers re-import the __main__
    # module (forkserver does), and TensorFlow in its import chain costs each ~5 s, 400 MB.
    from sagan.data.records import encode_example
    from sagan.data.shards import write_shards

    listing = list_source(config)
    skips = _Skips(sum(split.size for split in listing.splits.values()), config.max_bad_fraction)
    with (
        atomic_directory(out_dir) as staging,
        _pool(config.workers) as pool,
        logging_redirect_tqdm(),
    ):
        shards = {}
        for split, (items, size) in listing.splits.items():
            loaded = _ordered_map(pool, listing.load, items)
            bar = tqdm(loaded, total=size, desc=f"prepare {split}", unit="img", smoothing=0.05)
            records = (
                encode_example(item.image, config.image_size, item.labels, item.name)
                for item in skips.kept(bar)
            )
            shards[split] = write_shards(records, staging, split, config.images_per_shard)
            if not shards[split]:
                raise DataError(f"no {split} images left to write from data.path {config.path}")
        manifest = _manifest(config, listing, shards, skips.skipped)
        write_json(staging / MANIFEST_NAME, manifest)
    _log_summary(manifest, out_dir)
    return manifest


class _Skips:
    """Skipped images, and the stop once unreadable ones pass data.max_bad_fraction."""

    def __init__(self, total: int, max_fraction: float) -> None:
        self.total, self.max_fraction = total, max_fraction
        self.skipped: list[dict[str, str]] = []
        self.bad: list[str] = []

    def kept(self, loaded: Iterable[Loaded]) -> Iterator[Loaded]:
        """The items that have an image; the others are recorded."""
        for item in loaded:
            if item.image is None:
                self._add(item)
            else:
                yield item

    def _add(self, loaded: Loaded) -> None:
        log.warning("skipped %s: %s", loaded.name, loaded.problem)
        self.skipped.append({"file": loaded.name, "reason": loaded.problem})
        if not loaded.bad:
            return
        self.bad.append(f"{loaded.name} ({loaded.problem})")
        # Checked as we go: once past the budget the run can only fail, so fail early.
        if len(self.bad) > self.max_fraction * self.total:
            raise DataError(
                f"{len(self.bad)} of {self.total} images are unreadable, more than "
                f"data.max_bad_fraction={self.max_fraction}; e.g. {', '.join(self.bad[:EXAMPLES])}"
            )


@contextlib.contextmanager
def _pool(workers: int | None) -> Iterator[Pool | None]:
    """A process pool, or None to load in this process when one worker is asked for."""
    count = workers or len(os.sched_getaffinity(0))
    if count == 1:
        yield None
        return
    # forkserver: workers start from a clean interpreter, not a fork of this process and its
    # TensorFlow threads; they import __main__ and the loader's module (Pillow and NumPy).
    with multiprocessing.get_context("forkserver").Pool(count) as pool:
        yield pool


def _ordered_map(pool: Pool | None, function: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """``map(function, items)`` over the pool, in order, with at most two windows in flight.

    ``Pool.imap`` alone would queue every item at once and let results pile up unread.
    """
    if pool is None:
        yield from map(function, items)
        return
    pending: collections.deque[Iterator[R]] = collections.deque()
    iterator = iter(items)
    while window := list(itertools.islice(iterator, WINDOW)):
        pending.append(pool.imap(function, window, chunksize=CHUNKSIZE))
        if len(pending) == 2:  # the next window is queued before this one is drained
            yield from pending.popleft()
    while pending:
        yield from pending.popleft()


def _manifest(
    config: DataConfig,
    listing: Listing,
    shards: dict[str, list[dict[str, Any]]],
    skipped: list[dict[str, str]],
) -> dict[str, Any]:
    """Everything downstream needs to know about the shards; no timestamps, so reruns match."""
    params = {k: v for k, v in dataclasses.asdict(config).items() if k != "workers"}
    return {
        "source": config.source,
        "image_size": config.image_size,
        "attribute_names": list(listing.attribute_names),
        "attribute_classes": list(listing.attribute_classes),
        "splits": {
            split: {"count": sum(shard["count"] for shard in files), "shards": files}
            for split, files in shards.items()
        },
        "skipped": skipped,
        "ignored": {
            reason: {"count": len(names), "examples": sorted(names)[:EXAMPLES]}
            for reason, names in sorted(listing.ignored.items())
        },
        "params": params,
    }


def _log_summary(manifest: dict[str, Any], out_dir: Path) -> None:
    for split, info in manifest["splits"].items():
        log.info("%s: %d images in %d shards", split, info["count"], len(info["shards"]))
    if manifest["skipped"]:
        log.warning("skipped %d files, listed in %s", len(manifest["skipped"]), MANIFEST_NAME)
    for reason, info in manifest["ignored"].items():
        log.info("ignored %d entries: %s (e.g. %s)", info["count"], reason, info["examples"][0])
    log.info("wrote %s", out_dir)
