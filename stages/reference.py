"""DVC stage `reference`: features of the real test split, cached for evaluate.

Writes data/reference/<extractor>.npz (features, mean, covariance), so re-evaluating a new
generator costs only the generated side.
"""

from __future__ import annotations

import logging
import sys

from sagan import paths
from sagan.config import ConfigError, load_config
from sagan.data.errors import DataError
from sagan.evaluation.features import InceptionUnavailableError
from sagan.evaluation.scoring import extractor_for, read_split, save_reference
from sagan.stage import Stage

logger = logging.getLogger("stages.reference")


def main() -> int:
    with Stage(
        logger,
        ConfigError,
        DataError,
        FileNotFoundError,
        ValueError,
        InceptionUnavailableError,
        owns=[paths.REFERENCE_DIR],
    ) as stage:
        config = load_config()
        settings = config.evaluate
        extractor = extractor_for(settings.extractor, paths.ENCODER_MODEL, settings.inception_graph)
        images, _ = read_split(paths.PREPARED_DIR, "test")
        features = extractor(images)
        save_reference(paths.REFERENCE_DIR / f"{settings.extractor}.npz", features)
        logger.info(
            "%d test images → %s features %s", len(images), settings.extractor, features.shape
        )
    return stage.exit_code


if __name__ == "__main__":
    sys.exit(main())
