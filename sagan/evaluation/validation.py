"""Quality during training: the sampling generator's faces scored on the validation split.

Every ``train.eval_every`` generator updates the training loop hands its sampling generator
(the EMA one by default) to a :class:`ValidationScorer`. It draws ``train.eval_samples``
faces from noise fixed by ``train.seed`` and scores them with the evaluate stage's own code
(:func:`sagan.evaluation.scoring.score_samples`: the same extractor, the same settings),
against the validation split instead of the test split, so choosing a checkpoint never sees
the faces the final scores are measured on.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from sagan import paths
from sagan.config import Config, ConfigError
from sagan.data.manifest import Manifest
from sagan.evaluation.attribute_coverage import ATTRIBUTE_TV, ATTRIBUTE_TV_MAX, DROPPED_CLASSES
from sagan.evaluation.features import EncoderExtractor, FeatureExtractor
from sagan.evaluation.metrics import COHERENCE
from sagan.evaluation.scoring import (
    RealSplit,
    attribute_reader,
    extractor_for,
    real_split,
    score_samples,
)
from sagan.model.conditioning import Conditioning
from sagan.sampling.faces import sample_codes, sample_images
from sagan.sampling.grids import upsample_nearest

SPLIT = "validation"
# The scores that need the data's attribute labels (the attribute reader).
ATTRIBUTE_SCORES = (ATTRIBUTE_TV, ATTRIBUTE_TV_MAX, DROPPED_CLASSES, COHERENCE)
SAMPLE_BATCH = 250  # faces per generator call: speed only, the noise is drawn per face


class ValidationScorer:
    """Scores a generator's fixed-noise faces against the validation split."""

    def __init__(
        self,
        config: Config,
        extractor: FeatureExtractor,
        validation: RealSplit,
        manifest: Manifest,
        reader: EncoderExtractor | None = None,
        conditioning: Conditioning | None = None,
    ) -> None:
        self.settings = config.evaluate
        self.count, self.seed = config.train.eval_samples, config.train.seed
        self.image_size = config.data.image_size
        self.extractor, self.validation, self.manifest, self.reader = (
            extractor,
            validation,
            manifest,
            reader,
        )
        self.attributes = None
        if conditioning is not None:  # drawn at the training split's frequencies
            codes = sample_codes(conditioning, self.count, self.seed)
            self.attributes = conditioning.encode(codes).numpy()

    def samples(self, generator: keras.Model) -> np.ndarray:
        """The faces scored: uint8 (eval_samples, S, S, 3), a progressive stage's upsampled."""
        batches = sample_images(generator, self.count, self.seed, SAMPLE_BATCH, self.attributes)
        return upsample_nearest(np.concatenate(list(batches)), self.image_size)

    def __call__(self, generator: keras.Model) -> dict[str, float]:
        """FID, KID, precision/recall, density/coverage (and, with attribute labels, the
        attribute coverage and coherence) of ``generator``'s faces."""
        return score_samples(
            self.settings,
            self.extractor,
            self.samples(generator),
            self.validation,
            self.manifest,
            self.reader,
        )


def validation_scorer(
    config: Config, data_dir: Path, conditioning: Conditioning | None = None
) -> ValidationScorer:
    """The scorer of ``evaluate.extractor``, on the reference stage's validation features."""
    settings = config.evaluate
    manifest = Manifest.read(data_dir)
    extractor = extractor_for(settings.extractor, paths.ENCODER_MODEL, settings.inception_graph)
    reader = attribute_reader(extractor, manifest, paths.ENCODER_MODEL)
    check_keep_best(config.train.keep_best, manifest)
    reference = paths.reference_file(SPLIT, settings.extractor)
    validation = real_split(data_dir, SPLIT, reference, reader)
    return ValidationScorer(config, extractor, validation, manifest, reader, conditioning)


def check_keep_best(keep_best: str | None, manifest: Manifest) -> None:
    """``train.keep_best`` must be a score that the prepared data lets us compute."""
    if keep_best in ATTRIBUTE_SCORES and not manifest.attribute_names:
        raise ConfigError(
            f"train.keep_best is {keep_best!r}, a score of attribute labels, but the prepared "
            f"data ({manifest.source}) has none: choose fid, kid, precision, recall, density "
            "or coverage"
        )
    if keep_best == COHERENCE and not manifest.coherence_pairs:
        raise ConfigError(
            f"train.keep_best is 'coherence', but the prepared data ({manifest.source}) has "
            "no attributes that must agree (only the synthetic faces do): choose another score"
        )
