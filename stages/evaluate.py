"""DVC stage `evaluate`: FID, KID and precision/recall of the samples against the test split.

Writes metrics/eval.json and logs it to the pipeline's MLflow run, with the ceilings the
reference stage wrote (metrics/ceiling.json: what real faces score; ``ceiling/test/*`` beside
these scores, ``ceiling/validation/*`` beside those of training's evaluations). With the encoder
extractor on data whose manifest lists attributes that must agree (the synthetic faces: both
eyes the same colour, eyebrows the hair's colour) it also scores that coherence on the
samples and on real test faces (the ceiling).

Samples of a conditional generator (generate wrote samples/attributes.csv) also get the
conditional accuracy of each attribute (the encoder reads back the class asked for; on real
test images, the true class: the ceiling) and intra-FID over the values of
``evaluate.intra_fid_attribute``.
"""

from __future__ import annotations

import logging
import sys

from sagan import paths
from sagan.config import ConfigError, load_config
from sagan.data.errors import DataError
from sagan.data.manifest import Manifest
from sagan.evaluation.ceiling import read_ceilings
from sagan.evaluation.features import InceptionUnavailableError
from sagan.evaluation.scoring import (
    EXTRACTOR,
    attribute_reader,
    extractor_for,
    read_conditioned,
    read_samples,
    real_split,
    score_samples,
)
from sagan.files import write_json
from sagan.stage import Stage
from sagan.tracking import CEILING, EVALUATION, TrackingError, section, stage_run

logger = logging.getLogger("stages.evaluate")
USER_ERRORS = (
    ConfigError,
    DataError,
    FileNotFoundError,
    ValueError,
    TrackingError,
    InceptionUnavailableError,
)


def main() -> int:
    run_errors = (TrackingError,)  # the store lost after the run is reopened: one line too
    with Stage(
        logger, *USER_ERRORS, run_errors=run_errors, owns=[paths.EVAL_METRICS.parent]
    ) as stage:
        config = load_config()
        settings = config.evaluate
        manifest = Manifest.read(paths.PREPARED_DIR)
        samples = read_samples(paths.SAMPLE_IMAGES, settings.num_samples, config.data.image_size)
        extractor = extractor_for(settings.extractor, paths.ENCODER_MODEL, settings.inception_graph)
        reader = attribute_reader(extractor, manifest, paths.ENCODER_MODEL)
        test = real_split(
            paths.PREPARED_DIR, "test", paths.reference_file("test", settings.extractor), reader
        )
        conditioned = read_conditioned(paths.SAMPLE_ATTRIBUTES, settings, manifest, reader)
        ceilings = read_ceilings(paths.CEILING_METRICS)
        tracker = stage.track(stage_run(config, paths.RUN_FILE))
        scores = score_samples(settings, extractor, samples, test, manifest, reader, conditioned)
        write_json(paths.EVAL_METRICS, {**scores, EXTRACTOR: settings.extractor})
        tracker.log_metrics(section(EVALUATION, scores), step=0)
        for split, split_scores in ceilings.items():  # ceiling/test/fid, …
            tracker.log_metrics(section(CEILING, section(split, split_scores)), step=0)
        tracker.log_artifact(paths.EVAL_METRICS, "evaluate")
        logger.info("%s", scores)
        name = config.mlflow.registered_model
        version = tracker.register_generator(name, scores, settings.extractor)
        logger.info("registered the generator as models:/%s/%s", name, version)
    return stage.exit_code


if __name__ == "__main__":
    sys.exit(main())
