"""Feature extractors for the evaluate stage, chosen by ``evaluate.extractor``.

Every extractor maps uint8 RGB images (N, H, W, 3) to features (N, D):

| name              | network                                  | D           | FIDs as in papers |
|-------------------|------------------------------------------|-------------|-------------------|
| `encoder`         | our attribute classifier (`encoder.py`)  | feature_dim | no                |
| `inception`       | the 2015 TF Inception graph, `pool_3`    | 2048        | yes               |
| `keras_inception` | `keras.applications.InceptionV3`, avg    | 2048        | no                |

Encoder FIDs compare only between runs that share one trained encoder.
"""

from __future__ import annotations

from pathlib import Path

import keras

from sagan.evaluation.features.base import FeatureExtractor, check_images, run_batched
from sagan.evaluation.features.encoder import EncoderExtractor, build_encoder, train_encoder
from sagan.evaluation.features.inception import (
    InceptionGraphExtractor,
    InceptionUnavailableError,
    KerasInceptionExtractor,
    inception_graph_path,
)

EXTRACTORS = ("encoder", "inception", "keras_inception")

__all__ = [
    "EXTRACTORS",
    "EncoderExtractor",
    "FeatureExtractor",
    "InceptionGraphExtractor",
    "InceptionUnavailableError",
    "KerasInceptionExtractor",
    "build_encoder",
    "check_images",
    "make_extractor",
    "run_batched",
    "train_encoder",
]


def make_extractor(
    name: str,
    *,
    encoder: keras.Model | None = None,
    inception_graph: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> FeatureExtractor:
    """The extractor called ``name`` (``evaluate.extractor``).

    ``encoder``: a trained :func:`build_encoder` model (required for ``encoder``).
    ``inception_graph``: a local ``classify_image_graph_def.pb``; when None the graph is
    downloaded once into ``cache_dir`` (default ``~/.keras/models``).
    """
    if name == "encoder":
        if encoder is None:
            raise ValueError("evaluate.extractor: encoder needs a trained encoder model")
        return EncoderExtractor(encoder)
    if name == "inception":
        return InceptionGraphExtractor(inception_graph_path(inception_graph, cache_dir))
    if name == "keras_inception":
        return KerasInceptionExtractor()
    raise ValueError(f"evaluate.extractor must be one of {', '.join(EXTRACTORS)}, got {name!r}")
