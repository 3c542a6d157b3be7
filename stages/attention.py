"""DVC stage `attention`: where the trained G and D look, and how γ and σ moved.

Reads models/ and plots/train/ (the history and the attention snapshots training saved),
writes plots/attention/: the maps of the trained networks and over training (see
:mod:`sagan.sampling.attention_report`) and ``gamma_sigma.png``, γ of every attention layer
against the reference's range, and σ. Every figure is also logged to the pipeline's MLflow run.
"""

from __future__ import annotations

import logging
import sys

from sagan import paths
from sagan.config import ConfigError, load_config
from sagan.files import atomic_directory
from sagan.model.saved import DISCRIMINATOR, load_generator, load_model
from sagan.sampling.attention_figures import curves_figure, save_figure
from sagan.sampling.attention_report import final_figures, training_figures
from sagan.sampling.faces import generator_conditioning
from sagan.stage import Stage
from sagan.tracking import TrackingError, stage_run

logger = logging.getLogger("stages.attention")


def main() -> int:
    user_errors = (ConfigError, TrackingError, FileNotFoundError, ValueError)
    run_errors = (TrackingError,)  # the store lost after the run is reopened: one line too
    with Stage(
        logger, *user_errors, run_errors=run_errors, owns=[paths.ATTENTION_PLOTS_DIR]
    ) as stage:
        config = load_config()
        # Before the run is reopened, as in generate: a missing or refused model is one
        # line and exit 1, and leaves the run as train left it.
        generator = load_generator(paths.MODELS_DIR)
        discriminator = load_model(paths.MODELS_DIR / DISCRIMINATOR)
        conditioning = generator_conditioning(generator, paths.CONDITIONING_FILE)
        tracker = stage.track(stage_run(config, paths.RUN_FILE))
        with atomic_directory(paths.ATTENTION_PLOTS_DIR) as staging:
            final_figures(config, generator, discriminator, staging, conditioning)
            training_figures(config, paths.ATTENTION_SNAPSHOTS, staging)
            curves = curves_figure(paths.TRAIN_PLOTS_DIR / "history.csv")
            save_figure(curves, staging / "gamma_sigma.png")
        for figure in sorted(paths.ATTENTION_PLOTS_DIR.glob("*.png")):
            tracker.log_artifact(figure, "attention")
        logger.info("wrote the attention figures to %s", paths.ATTENTION_PLOTS_DIR)
    return stage.exit_code


if __name__ == "__main__":
    sys.exit(main())
