"""The encoder stage's work: fit our feature network to the prepared labels, score it on test.

A dataset without labels gets no encoder: evaluate then needs another extractor.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras

from sagan.config import EncoderConfig
from sagan.data.pipeline import make_dataset
from sagan.evaluation.features import EncoderExtractor, build_encoder, train_encoder
from sagan.evaluation.metrics import attribute_accuracy
from sagan.evaluation.scoring import read_split

logger = logging.getLogger(__name__)
NO_LABELS = "no attribute labels in the prepared data: no encoder trained"


def fit_encoder(
    settings: EncoderConfig, image_size: int, attribute_classes: dict[str, int], data_dir: Path
) -> tuple[keras.Model | None, dict[str, float | str]]:
    """The encoder trained on the train split and its scores: final loss, test accuracies.

    Without attributes there is nothing to learn: no encoder, and a note for the scores.
    """
    if not attribute_classes:
        logger.warning("%s", NO_LABELS)
        return None, {"note": NO_LABELS}
    encoder = build_encoder(image_size, attribute_classes, settings.feature_dim, settings.seed)
    examples = make_dataset(
        data_dir, "train", 512, shuffle=False, repeat=False, drop_remainder=False, with_labels=True
    ).unbatch()
    logger.info("training the encoder for %d steps", settings.steps)
    scores: dict[str, float | str] = {
        "train_loss": train_encoder(
            encoder,
            examples,
            settings.steps,
            settings.seed,
            settings.batch_size,
            settings.learning_rate,
        )
    }
    images, labels = read_split(data_dir, "test")
    predicted = EncoderExtractor(encoder).predict_attributes(images)
    scores.update(attribute_accuracy(predicted, labels, tuple(attribute_classes)))
    return encoder, scores
