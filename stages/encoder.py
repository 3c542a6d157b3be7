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
from sagan.data.manifest import Manifest
from sagan.evaluation.encoder_training import fit_encoder
from sagan.files import atomic_directory, write_json
from sagan.stage import Stage

logger = logging.getLogger("stages.encoder")


def main() -> int:
    owns = [paths.ENCODER_DIR, paths.ENCODER_METRICS.parent]
    with Stage(logger, ConfigError, DataError, owns=owns) as stage:
        config = load_config()
        manifest = Manifest.read(paths.PREPARED_DIR)
        with atomic_directory(paths.ENCODER_DIR) as staging:
            encoder, scores = fit_encoder(
                config.encoder, config.data.image_size, manifest.attributes, paths.PREPARED_DIR
            )
            if encoder is not None:
                encoder.save(staging / paths.ENCODER_MODEL.name)
        write_json(paths.ENCODER_METRICS, scores)
        logger.info("encoder scores: %s", scores)
    return stage.exit_code


if __name__ == "__main__":
    sys.exit(main())
