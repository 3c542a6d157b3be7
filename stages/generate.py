"""DVC stage `generate`: sample faces from the trained generator.

Writes samples/ (the images, grid.png, interpolation.png and, for a conditional generator,
attributes.csv and sweep.png: see :mod:`sagan.sampling.samples`) and logs the figures to the
pipeline's MLflow run.
"""

from __future__ import annotations

import logging
import sys

from sagan import paths
from sagan.config import ConfigError, load_config
from sagan.model.saved import load_generator
from sagan.sampling.samples import FIGURES, sample_distribution, write_samples
from sagan.stage import Stage
from sagan.tracking import TrackingError, stage_run

logger = logging.getLogger("stages.generate")


def main() -> int:
    user_errors = (ConfigError, TrackingError, FileNotFoundError, ValueError)
    run_errors = (TrackingError,)  # the store lost after the run is reopened: one line too
    with Stage(logger, *user_errors, run_errors=run_errors, owns=[paths.SAMPLES_DIR]) as stage:
        config = load_config()
        # Before the run is reopened: a missing model, or one refused in safe mode (it would
        # run code on load), or attributes it cannot honour, is one line and exit 1, and
        # leaves the run as train left it.
        generator = load_generator(paths.MODELS_DIR)
        conditioning = sample_distribution(generator, config.generate, paths.CONDITIONING_FILE)
        tracker = stage.track(stage_run(config, paths.RUN_FILE))
        write_samples(generator, config.generate, paths.SAMPLES_DIR, conditioning)
        for name in FIGURES:
            if (paths.SAMPLES_DIR / name).is_file():
                tracker.log_artifact(paths.SAMPLES_DIR / name, "generate")
        logger.info("wrote %d samples to %s", config.generate.num_samples, paths.SAMPLES_DIR)
    return stage.exit_code


if __name__ == "__main__":
    sys.exit(main())
