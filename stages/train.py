"""DVC stage `train`: the SAGAN training loop, checkpointed and tracked in MLflow.

Reads data/prepared (and, with train.eval_every, encoder/ and data/reference's validation
features, to score itself during training), writes models/ (generator, discriminator, the
EMA generator when kept, of the best checkpoint with train.keep_best; the MLflow run id and,
for a conditional model, attributes.json: the conditioned attributes and their
training-split distribution), metrics/train.json and plots/train/ (history.csv, quality.csv,
the grids), and keeps checkpoints/ across runs so that a killed run resumes where its last
checkpoint left it.
"""

from __future__ import annotations

import logging
import os
import sys

from sagan import paths
from sagan.config import ConfigError, load_config
from sagan.data.errors import DataError
from sagan.stage import Stage
from sagan.tracking import TrackingError
from sagan.training.checkpoints import CheckpointError
from sagan.training.cluster import TF_CONFIG, ClusterError
from sagan.training.loop import NonFiniteLossError, WorkerLostError
from sagan.training.session import run_training

logger = logging.getLogger("stages.train")


def main() -> int:
    with Stage(
        logger,
        ConfigError,
        DataError,
        FileNotFoundError,  # the encoder or the validation features: run `dvc repro`
        TrackingError,
        ClusterError,
        WorkerLostError,  # on the other workers, which hold no run: one line too
        # TrackingError too: a store lost mid-run ends the stage with one line
        run_errors=(NonFiniteLossError, CheckpointError, WorkerLostError, TrackingError),
        interrupted="interrupted; rerun the stage to resume from the last checkpoint",
        # checkpoints/ too: a temporary there would be published into plots/train on resume.
        owns=[
            paths.CHECKPOINTS_DIR,
            paths.TRAIN_PLOTS_DIR,
            paths.MODELS_DIR,
            paths.TRAIN_METRICS.parent,
        ],
    ) as stage:
        run_training(load_config(), stage, os.environ.get(TF_CONFIG), logger)
    return stage.exit_code


if __name__ == "__main__":
    sys.exit(main())
