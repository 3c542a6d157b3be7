"""DVC stage `reference`: features of the real validation and test splits, cached.

Writes data/reference/<split>_<extractor>.npz (features, mean, covariance): training scores
its samples against the validation split's (train.eval_every), evaluate against the test
split's, so scoring a generator costs only the generated side.
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
SPLITS = ("validation", "test")


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
        for split in SPLITS:
            images, _ = read_split(paths.PREPARED_DIR, split)
            features = extractor(images)
            save_reference(paths.reference_file(split, settings.extractor), features)
            logger.info(
                "%d %s images → %s features %s",
                len(images),
                split,
                settings.extractor,
                features.shape,
            )
    return stage.exit_code


if __name__ == "__main__":
    sys.exit(main())
