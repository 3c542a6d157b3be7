"""Glue between images on disk, the feature extractors and the metrics.

test split ──► features ──► cached reference (features + Gaussian statistics)
samples/images/*.png ──► features ──┴──► FID, KID, precision/recall (+ coherence)
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from PIL import Image

from sagan import metrics
from sagan.atomic import atomic_path
from sagan.data.pipeline import make_dataset, read_manifest
from sagan.data.synthetic import COHERENCE_PAIRS
from sagan.features import EncoderExtractor, FeatureExtractor, make_extractor
from sagan.imaging import to_uint8

COHERENCE_REAL = "coherence_real"  # the same score on real test images: the ceiling
EXTRACTOR = "extractor"


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


def load_encoder(path: Path) -> keras.Model:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the encoder stage trains it from the prepared attribute labels "
            "(a dataset without labels needs evaluate.extractor: inception)"
        )
    return keras.models.load_model(path, safe_mode=True)


def extractor_for(name: str, encoder_path: Path, inception_graph: str | None) -> FeatureExtractor:
    """The extractor called ``name``, with the encoder loaded only when it is the one asked."""
    encoder = load_encoder(encoder_path) if name == "encoder" else None
    return make_extractor(name, encoder=encoder, inception_graph=inception_graph)


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


def coherence_scores(
    encoder: EncoderExtractor,
    generated: np.ndarray,
    real: np.ndarray,
    attribute_names: tuple[str, ...],
) -> dict[str, float]:
    """Share of faces whose long-range constraints hold, generated and real (the ceiling)."""
    return {
        metrics.COHERENCE: metrics.coherence_score(
            encoder.predict_attributes(generated), attribute_names, COHERENCE_PAIRS
        ),
        COHERENCE_REAL: metrics.coherence_score(
            encoder.predict_attributes(real), attribute_names, COHERENCE_PAIRS
        ),
    }


def manifest_attributes(data_dir: Path) -> tuple[str, dict[str, int]]:
    """The prepared data's source and its attributes with their class counts."""
    manifest = read_manifest(data_dir)
    classes = dict(zip(manifest["attribute_names"], manifest["attribute_classes"], strict=True))
    return manifest["source"], classes
