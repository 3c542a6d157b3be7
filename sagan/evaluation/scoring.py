"""Glue between images on disk, the feature extractors and the metrics.

validation / test split ──► features ──► cached reference (features + Gaussian statistics)
samples (PNGs, or faces drawn during training) ──► features ──┴──► FID, KID, precision/recall,
                                                   attribute coverage, coherence
samples/attributes.csv ──► conditional accuracy, intra-FID (conditional models)
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from sagan.config import ConfigError, EvaluateConfig
from sagan.data.errors import DataError
from sagan.data.manifest import Manifest
from sagan.data.pipeline import make_dataset
from sagan.evaluation import backgrounds, metrics
from sagan.evaluation.attribute_coverage import attribute_coverage
from sagan.evaluation.features import EncoderExtractor, FeatureExtractor, make_extractor
from sagan.files import atomic_path
from sagan.model.saved import load_model
from sagan.sampling.grids import to_uint8

COHERENCE_REAL = "coherence_real"  # the same score on real test images: the ceiling
EXTRACTOR = "extractor"
CONDITIONAL_ACCURACY = "conditional_accuracy"  # mean over the attributes; _<name> each
CONDITIONAL_ACCURACY_REAL = "conditional_accuracy_real"  # the same on real test images: the ceiling
INTRA_FID = "intra_fid"  # mean over the attribute's values; _<attribute>_<value> each


def read_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Every image of a prepared split as uint8 (N, S, S, 3), with its labels (N, A)."""
    dataset = make_dataset(
        data_dir, split, 512, shuffle=False, repeat=False, drop_remainder=False, with_labels=True
    )
    images, labels = [], []
    for batch_images, batch_labels in dataset:
        images.append(to_uint8(batch_images.numpy()))
        labels.append(batch_labels.numpy())
    return np.concatenate(images), np.concatenate(labels)


def read_samples(directory: Path, count: int, image_size: int) -> np.ndarray:
    """The first ``count`` PNGs of ``directory`` (sorted) as uint8 (count, S, S, 3)."""
    files = sorted(Path(directory).glob("*.png"))[:count]
    if len(files) < count:
        raise ValueError(
            f"evaluate.num_samples is {count} but {directory} holds {len(files)} images: "
            "raise generate.num_samples or lower evaluate.num_samples"
        )
    images = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in files])
    if images.shape[1:3] != (image_size, image_size):
        raise ValueError(
            f"samples in {directory} are {images.shape[2]}x{images.shape[1]}, "
            f"data.image_size is {image_size}: rerun generate"
        )
    return images


def load_encoder(path: Path) -> EncoderExtractor:
    """The encoder stage's trained feature network, as an extractor."""
    hint = (
        "the encoder stage trains it from the prepared attribute labels "
        "(a dataset without labels needs evaluate.extractor: inception)"
    )
    return EncoderExtractor(load_model(path, hint))


def extractor_for(name: str, encoder_path: Path, inception_graph: str | None) -> FeatureExtractor:
    """The extractor called ``name``, with the encoder loaded only when it is the one asked."""
    if name == "encoder":
        return load_encoder(encoder_path)
    return make_extractor(name, inception_graph=inception_graph)


def save_reference(path: Path, features: np.ndarray) -> None:
    """Real features and their Gaussian statistics in one .npz, atomically."""
    stats = metrics.gaussian_statistics(features)
    with atomic_path(path) as temporary:
        np.savez(temporary, features=features, mu=stats.mu, sigma=stats.sigma)


def load_reference(path: Path) -> tuple[np.ndarray, metrics.GaussianStatistics]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the reference stage (dvc repro)")
    with np.load(path) as stored:
        features = stored["features"]
        stats = metrics.GaussianStatistics(stored["mu"], stored["sigma"], len(features))
    return features, stats


class RealSplit(NamedTuple):
    """What samples are scored against: a prepared split's cached features and, where the
    data has attribute labels, its images with their labels and the classes the attribute
    reader sees on them."""

    features: np.ndarray  # (M, D)
    statistics: metrics.GaussianStatistics
    images: np.ndarray | None  # (M, S, S, 3) uint8; None without an attribute reader
    labels: np.ndarray | None  # (M, A)
    classes: np.ndarray | None  # (M, A): the reader's classes, the ceiling the samples aim at


def real_split(
    data_dir: Path, split: str, reference_path: Path, reader: EncoderExtractor | None
) -> RealSplit:
    """The real side of scoring for ``split`` (read once; score many sample sets against it)."""
    features, statistics = load_reference(reference_path)
    if reader is None:
        return RealSplit(features, statistics, None, None, None)
    images, labels = read_split(data_dir, split)
    manifest = Manifest.read(data_dir)
    classes = backgrounds.with_read_backgrounds(manifest, images, reader.predict_attributes(images))
    return RealSplit(features, statistics, images, labels, classes)


def read_sample_attributes(path: Path, count: int) -> tuple[tuple[str, ...], np.ndarray]:
    """The conditioned attributes named in generate's ``path`` and the first ``count`` samples'
    classes (count, k), in the samples' order."""
    with Path(path).open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    if len(rows) < count:
        raise ValueError(f"{path} lists {len(rows)} samples, evaluate.num_samples is {count}")
    return tuple(header[1:]), np.array([row[1:] for row in rows[:count]], np.int32)


def intra_fid_column(chosen: str | None, names: tuple[str, ...]) -> int:
    """Which conditioned attribute intra-FID groups by: ``evaluate.intra_fid_attribute``."""
    if chosen is None:
        return 0
    if chosen not in names:
        raise ConfigError(
            f"evaluate.intra_fid_attribute: the samples are not conditioned on {chosen!r}; "
            f"they are conditioned on: {', '.join(names)}"
        )
    return names.index(chosen)


def conditional_accuracy(
    encoder: EncoderExtractor,
    columns: list[int],
    names: tuple[str, ...],
    images: np.ndarray,
    wanted: np.ndarray,
    key: str = CONDITIONAL_ACCURACY,
) -> dict[str, float]:
    """How often the encoder reads back the wanted class of each conditioned attribute.

    ``columns`` are the attributes' heads (their manifest positions), ``wanted`` the classes
    (N, k). Keys ``<key>_<name>``, and ``<key>`` for their mean.
    """
    predicted = encoder.predict_attributes(images)[:, columns]
    shares = metrics.attribute_accuracy(predicted, wanted, names)
    scores = {f"{key}_{name}": shares[f"{metrics.ACCURACY_PREFIX}{name}"] for name in names}
    return {key: float(np.mean(list(scores.values()))), **scores}


def intra_fid_scores(
    real: np.ndarray,
    real_values: np.ndarray,
    fake: np.ndarray,
    fake_values: np.ndarray,
    attribute: str,
) -> dict[str, float]:
    """:func:`sagan.evaluation.metrics.intra_fid` of one attribute, keyed
    ``intra_fid_<attribute>_<value>``, with their mean as ``intra_fid``."""
    per_value = metrics.intra_fid(real, real_values, fake, fake_values)
    if not per_value:
        raise ValueError(
            f"intra-FID over {attribute}: no value has 2 generated and 2 real images; "
            "raise evaluate.num_samples"
        )
    scores = {f"{INTRA_FID}_{attribute}_{value}": fid for value, fid in per_value.items()}
    return {INTRA_FID: float(np.mean(list(per_value.values()))), **scores}


class Conditioned(NamedTuple):
    """What conditional samples were asked for, and where their attributes sit in the data."""

    names: tuple[str, ...]
    classes: np.ndarray  # (N, k): each sample's class of each conditioned attribute
    columns: list[int]  # the attributes' positions in the manifest (and encoder heads)
    intra_fid: int  # which of them intra-FID groups by
    encoder: EncoderExtractor


def attribute_reader(
    extractor: FeatureExtractor, manifest: Manifest, encoder_path: Path
) -> EncoderExtractor | None:
    """The encoder that reads the attributes of samples and real faces, whatever the extractor;
    None when the prepared data has no attribute labels (then no encoder was trained)."""
    if not manifest.attribute_names:
        return None
    if isinstance(extractor, EncoderExtractor):
        return extractor
    return load_encoder(encoder_path)


def read_conditioned(
    attributes_file: Path,
    settings: EvaluateConfig,
    manifest: Manifest,
    encoder: EncoderExtractor | None,
) -> Conditioned | None:
    """The samples' attributes (None when generate wrote none: an unconditional model)."""
    if not attributes_file.is_file():
        return None
    names, classes = read_sample_attributes(attributes_file, settings.num_samples)
    missing = [name for name in names if name not in manifest.attribute_names]
    if missing:  # with every name there, the data has labels and ``encoder`` is not None
        raise DataError(f"the prepared data has no attribute {missing[0]!r}: rerun train")
    columns = [manifest.attribute_names.index(name) for name in names]
    column = intra_fid_column(settings.intra_fid_attribute, names)
    return Conditioned(names, classes, columns, column, encoder)


def conditional_scores(
    conditioned: Conditioned, samples: np.ndarray, fake: np.ndarray, real: RealSplit
) -> dict[str, float]:
    """Conditional accuracy (generated and real) and intra-FID of conditional samples."""
    names, columns, column = conditioned.names, conditioned.columns, conditioned.intra_fid
    real_labels = real.labels[:, columns]  # (M, k)
    return {
        **conditional_accuracy(conditioned.encoder, columns, names, samples, conditioned.classes),
        **conditional_accuracy(
            conditioned.encoder, columns, names, real.images, real_labels, CONDITIONAL_ACCURACY_REAL
        ),
        **intra_fid_scores(
            real.features,
            real_labels[:, column],
            fake,
            conditioned.classes[:, column],
            names[column],
        ),
    }


def score_samples(
    settings: EvaluateConfig,
    extractor: FeatureExtractor,
    samples: np.ndarray,
    real: RealSplit,
    manifest: Manifest,
    reader: EncoderExtractor | None = None,
    conditioned: Conditioned | None = None,
) -> dict[str, float]:
    """Every score of ``samples`` against a real split (:func:`real_split`).

    FID, KID, precision/recall and density/coverage always. Where the data has attribute
    labels, the classes ``reader`` (:func:`attribute_reader`, the one ``real`` was read with)
    reads on the samples and on the real faces give the mode coverage by attribute, and the
    coherence when the manifest lists attribute pairs that must agree; ``conditioned`` samples
    get the conditional scores. The evaluate stage scores against the test split, training
    (``train.eval_every``) against the validation split.
    """
    fake = extractor(samples)
    scores = metrics.compute_metrics(
        real.features,
        fake,
        kid_subset_size=settings.kid_subset_size,
        kid_subsets=settings.kid_subsets,
        pr_k=settings.pr_k,
        seed=settings.seed,
        real_statistics=real.statistics,
    )
    if reader is None:
        return scores
    # (N, A); the synthetic faces' background read from pixels: exact, "unsure" where the
    # encoder would have to guess (sagan/evaluation/backgrounds.py)
    fake_classes = backgrounds.with_read_backgrounds(
        manifest, samples, reader.predict_attributes(samples)
    )
    if backgrounds.reads_backgrounds(manifest):
        column = fake_classes[:, manifest.attribute_names.index(backgrounds.ATTRIBUTE)]
        scores[backgrounds.BACKGROUND_UNSURE] = float(np.mean(column == backgrounds.UNSURE))
    scores.update(attribute_coverage(real.classes, fake_classes, manifest.attributes))
    if manifest.coherence_pairs:
        names, pairs = manifest.attribute_names, manifest.coherence_pairs
        scores[metrics.COHERENCE] = metrics.coherence_score(fake_classes, names, pairs)
        scores[COHERENCE_REAL] = metrics.coherence_score(real.classes, names, pairs)
    if conditioned is not None:
        scores.update(conditional_scores(conditioned, samples, fake, real))
    return scores
