"""DVC stage `encoder`: train our feature network on the prepared attribute labels.

Writes encoder/encoder.keras and metrics/encoder.json (accuracy per attribute on the test
split). A dataset without labels gets no encoder: evaluate then needs another extractor.
"""

from __future__ import annotations

import logging
import sys

from sagan import paths
from sagan.config import ConfigError, load_config
from sagan.data.errors import DataError
from sagan.data.pipeline import make_dataset
from sagan.evaluation.features import EncoderExtractor, build_encoder, train_encoder
from sagan.evaluation.metrics import attribute_accuracy
from sagan.evaluation.scoring import manifest_attributes, read_split
from sagan.files import atomic_directory, sweep_temporaries, write_json

logger = logging.getLogger("stages.encoder")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sweep_temporaries(paths.ENCODER_METRICS.parent)  # what a killed run left
    try:
        config = load_config()
        _, attribute_classes = manifest_attributes(paths.PREPARED_DIR)
    except (ConfigError, DataError) as error:
        logger.error("%s", error)
        return 1
    scores: dict[str, float | str] = {}
    with atomic_directory(paths.ENCODER_DIR) as staging:
        if not attribute_classes:
            scores["note"] = "no attribute labels in the prepared data: no encoder trained"
            logger.warning("%s", scores["note"])
        else:
            settings = config.encoder
            encoder = build_encoder(
                config.data.image_size, attribute_classes, settings.feature_dim, settings.seed
            )
            examples = make_dataset(
                paths.PREPARED_DIR,
                "train",
                512,
                shuffle=False,
                repeat=False,
                drop_remainder=False,
                with_labels=True,
            ).unbatch()
            logger.info("training the encoder for %d steps", settings.steps)
            scores["train_loss"] = train_encoder(
                encoder,
                examples,
                settings.steps,
                settings.seed,
                settings.batch_size,
                settings.learning_rate,
            )
            images, labels = read_split(paths.PREPARED_DIR, "test")
            predicted = EncoderExtractor(encoder).predict_attributes(images)
            scores.update(attribute_accuracy(predicted, labels, tuple(attribute_classes)))
            encoder.save(staging / paths.ENCODER_MODEL.name)
    write_json(paths.ENCODER_METRICS, scores)
    logger.info("encoder scores: %s", scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
