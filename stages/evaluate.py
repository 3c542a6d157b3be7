"""DVC stage `evaluate`: FID, KID and precision/recall of the samples against the test split.

Writes metrics/eval.json and logs it to the pipeline's MLflow run. With the encoder
extractor on synthetic faces it also scores global coherence (both eyes the same colour,
eyebrows the hair's colour) on the samples and on real test faces (the ceiling).
"""

from __future__ import annotations

import json
import logging
import sys

from sagan import metrics, paths
from sagan.atomic import atomic_path
from sagan.config import ConfigError, load_config
from sagan.data.errors import DataError
from sagan.evaluation import (
    EXTRACTOR,
    coherence_scores,
    extractor_for,
    load_reference,
    manifest_attributes,
    read_samples,
    read_split,
)
from sagan.features import InceptionUnavailableError
from sagan.tracking import TrackingError, reopen_run

logger = logging.getLogger("stages.evaluate")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config()
        settings = config.evaluate
        source, attribute_classes = manifest_attributes(paths.PREPARED_DIR)
        real, real_stats = load_reference(paths.REFERENCE_DIR / f"{settings.extractor}.npz")
        samples = read_samples(paths.SAMPLE_IMAGES, settings.num_samples, config.data.image_size)
        extractor = extractor_for(settings.extractor, paths.ENCODER_MODEL, settings.inception_graph)
        tracker = reopen_run(config, paths.RUN_FILE)
    except (
        ConfigError,
        DataError,
        FileNotFoundError,
        ValueError,
        TrackingError,
        InceptionUnavailableError,
    ) as error:
        logger.error("%s", error)
        return 1
    try:
        scores = metrics.compute_metrics(
            real,
            extractor(samples),
            kid_subset_size=settings.kid_subset_size,
            kid_subsets=settings.kid_subsets,
            pr_k=settings.pr_k,
            seed=settings.seed,
            real_statistics=real_stats,
        )
        if settings.extractor == "encoder" and source == "synthetic":
            test_images, _ = read_split(paths.PREPARED_DIR, "test")
            scores.update(
                coherence_scores(extractor, samples, test_images, tuple(attribute_classes))
            )
        with atomic_path(paths.EVAL_METRICS) as temporary:
            temporary.write_text(
                json.dumps({**scores, EXTRACTOR: settings.extractor}, indent=2, sort_keys=True)
                + "\n"
            )
        tracker.log_metrics({f"eval_{key}": value for key, value in scores.items()}, step=0)
        tracker.log_artifact(paths.EVAL_METRICS, "evaluate")
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish()
    logger.info("%s", scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
