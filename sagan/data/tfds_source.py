"""The ``tfds`` source: ``celeb_a`` from TensorFlow Datasets, as the reference loads it.

TFDS downloads CelebA from Google Drive, which often refuses with a quota error; the
error then points to the ``folder`` source, which reads the same zip downloaded by hand.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from sagan.config import DataConfig
from sagan.data.errors import DataError
from sagan.data.listing import Item, Listing, Split, load_array, square_spec

DATASET = "celeb_a"
# As the folder source splits CelebA: its official partition.
TFDS_SPLITS = {"train": "train", "validation": "validation", "test": "test"}


def list_tfds(config: DataConfig) -> Listing:
    builder = tfds.builder(DATASET, data_dir=config.path)
    try:
        builder.download_and_prepare()
    # TFDS raises many types here (DownloadError, NonMatchingChecksumError, OSError...).
    except Exception as error:  # noqa: BLE001
        raise DataError(
            f"tfds could not download {DATASET} into data.path={config.path!r} "
            f"({type(error).__name__}: {error}). Google Drive often refuses it (quota): "
            "download img_align_celeba.zip, list_eval_partition.txt and list_attr_celeba.txt "
            "by hand into one folder and set data.source: folder, data.path: <the zip>"
        ) from error
    names = tuple(builder.info.features["attributes"].keys())
    caps = {"train": config.num_train, "validation": config.num_validation, "test": config.num_test}
    return Listing(
        attribute_names=names,
        attribute_classes=(2,) * len(names),
        splits={
            split: Split(_items(builder, split, names, caps[split]), _size(builder, split, caps))
            for split in TFDS_SPLITS
        },
        load=functools.partial(load_array, square_spec(config)),
    )


def _items(
    builder: tfds.core.DatasetBuilder, split: str, names: tuple[str, ...], cap: int | None
) -> Iterator[Item]:
    dataset = builder.as_dataset(split=TFDS_SPLITS[split], shuffle_files=False)
    for index, example in enumerate(tfds.as_numpy(dataset.take(-1 if cap is None else cap))):
        labels = tuple(int(example["attributes"][name]) for name in names)
        yield Item(f"{DATASET}/{split}/{index:06d}", labels, np.asarray(example["image"]))


def _size(builder: tfds.core.DatasetBuilder, split: str, caps: dict[str, int | None]) -> int:
    """Examples in the split as TFDS records them (unknown under tfds.testing.mock_data)."""
    parts = TFDS_SPLITS[split].split("+")
    known = sum(builder.info.splits[p].num_examples for p in parts if p in builder.info.splits)
    cap = caps[split]
    return min(known, cap) if known and cap else known or cap or 0
