"""``data.source`` to its :class:`~sagan.data.listing.Listing`: synthetic, folder/zip or TFDS."""

from __future__ import annotations

import functools

from sagan.config import ConfigError, DataConfig
from sagan.data import synthetic
from sagan.data.folder import list_folder
from sagan.data.listing import Item, Listing, Loaded, Split


def list_source(config: DataConfig) -> Listing:
    """The listing of ``data.source``; raises ConfigError or DataError naming the problem."""
    if config.source == "synthetic":
        return list_synthetic(config)
    if config.source == "folder":
        return list_folder(config)
    if config.source == "tfds":
        # tensorflow_datasets takes seconds to import: only this source pays for it.
        from sagan.data.tfds_source import list_tfds

        return list_tfds(config)
    raise ConfigError(f"data.source must be one of synthetic, folder, tfds, got {config.source!r}")


def list_synthetic(config: DataConfig) -> Listing:
    """Faces 0..num_train-1 for train, the next num_test for test, the next num_validation for
    validation (all set: config checks). Validation comes last so that adding it left the
    training and test faces of every earlier run as they were."""
    test_end = config.num_train + config.num_test
    bounds = {
        "train": (0, config.num_train),
        "validation": (test_end, test_end + config.num_validation),
        "test": (config.num_train, test_end),
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
        coherence_pairs=synthetic.COHERENCE_PAIRS,
    )


def render_synthetic(seed: int, image_size: int, item: Item) -> Loaded:
    image, labels = synthetic.render_face(seed, item.ref, image_size)
    return Loaded(item.name, image.tobytes(), tuple(labels.tolist()))
