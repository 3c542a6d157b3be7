"""DVC stage `reference`: features of the real validation and test splits, cached, and the
ceiling of every score.

Writes data/reference/<split>_<extractor>.npz (features, mean, covariance): training scores
its samples against the validation split's (train.eval_every), evaluate against the test
split's, so scoring a generator costs only the generated side. Then metrics/ceiling.json:
what real faces of the other split score against each, as if they were samples
(:mod:`sagan.evaluation.ceiling`), the yardstick beside every score of the samples.
"""

from __future__ import annotations

import logging
import sys

from sagan import paths
from sagan.config import ConfigError, load_config
from sagan.data.errors import DataError
from sagan.data.manifest import Manifest
from sagan.evaluation.ceiling import ceilings
from sagan.evaluation.features import InceptionUnavailableError
from sagan.evaluation.scoring import attribute_reader, extractor_for, read_split, save_reference
from sagan.files import write_json
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
        owns=[paths.REFERENCE_DIR, paths.CEILING_METRICS.parent],
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
        manifest = Manifest.read(paths.PREPARED_DIR)
        reader = attribute_reader(extractor, manifest, paths.ENCODER_MODEL)
        scores = ceilings(config, extractor, reader, paths.PREPARED_DIR)
        write_json(paths.CEILING_METRICS, scores)
        for split, split_scores in scores.items():
            logger.info(
                "ceiling of the %s split: FID %.1f, precision %.3f, recall %.3f (%d faces)",
                split,
                split_scores["fid"],
                split_scores["precision"],
                split_scores["recall"],
                split_scores["num_samples"],
            )
    return stage.exit_code


if __name__ == "__main__":
    sys.exit(main())
