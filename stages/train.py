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

import tensorflow as tf

from sagan import paths
from sagan.config import ConfigError, check_progressive_budget, load_config
from sagan.data.errors import DataError
from sagan.data.pipeline import make_dataset
from sagan.evaluation.validation import validation_scorer
from sagan.hardware import resolve_jit_compile, resolve_precision
from sagan.sampling.served import log_generator
from sagan.stage import Stage
from sagan.tracking import NullTracker, TrackingError, write_run_file
from sagan.training.checkpoints import CheckpointError
from sagan.training.cluster import TF_CONFIG, ClusterError, join, read_cluster
from sagan.training.loop import (
    NonFiniteLossError,
    TrainPaths,
    WorkerLostError,
    total_steps,
    train,
)
from sagan.training.perceptual import vgg19_weights_file
from sagan.training.session import (
    open_tracking,
    prepared_manifest,
    save_outputs,
    training_conditioning,
)
from sagan.training.step import GANTrainer, make_strategy

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
        run_errors=(NonFiniteLossError, CheckpointError, WorkerLostError),
        interrupted="interrupted; rerun the stage to resume from the last checkpoint",
        # checkpoints/ too: a temporary there would be published into plots/train on resume.
        owns=[
            paths.CHECKPOINTS_DIR,
            paths.TRAIN_PLOTS_DIR,
            paths.MODELS_DIR,
            paths.TRAIN_METRICS.parent,
        ],
    ) as stage:
        config = load_config()
        logger.info("precision: %s", resolve_precision(config.train.mixed_precision).reason)
        logger.info("XLA: %s", resolve_jit_compile(config.train).reason)
        manifest = prepared_manifest(config, paths.PREPARED_DIR)
        conditioning = training_conditioning(config, manifest, paths.PREPARED_DIR)
        if config.train.progressive is not None:  # train.epochs' budget is known only now
            budget = total_steps(config, manifest.splits["train"].count)
            check_progressive_budget(config.train, budget)
        if config.train.perceptual_weight > 0:
            vgg19_weights_file(config.train)  # downloaded here, before any run or checkpoint
        cluster = read_cluster(config.train.strategy, os.environ.get(TF_CONFIG))
        if config.train.deterministic:  # before the strategy: it creates the devices' contexts
            tf.config.experimental.enable_op_determinism()
        if cluster is None:
            strategy = make_strategy(config.train.strategy)
        else:  # the job forms before anything is written, or the stage ends after worker_wait
            strategy = join(cluster, config.train.worker_wait)
        scorer = None
        if config.train.eval_every is not None:
            scorer = validation_scorer(config, paths.PREPARED_DIR, conditioning)
        chief = cluster is None or cluster.is_chief
        tracker = NullTracker()
        if chief:
            # Everything after the run is open is tracked, so that no failure or Ctrl-C
            # (building the models takes seconds) leaves the run marked RUNNING.
            tracker = stage.track(
                open_tracking(
                    config, paths.PREPARED_DIR / paths.MANIFEST_NAME, paths.CHECKPOINTS_DIR
                )
            )
        trainer = GANTrainer(
            config.model, config.train, config.data.image_size, strategy, conditioning
        )
        dataset = make_dataset(
            paths.PREPARED_DIR,
            "train",
            config.train.batch_size,
            seed=config.train.seed,
            with_labels=conditioning is not None,
        )
        train_paths = TrainPaths(checkpoints=paths.CHECKPOINTS_DIR, plots=paths.TRAIN_PLOTS_DIR)
        num_images = manifest.splits["train"].count
        metrics = train(config, trainer, dataset, num_images, train_paths, tracker, chief, scorer)
        if chief:
            save_outputs(trainer, metrics, paths.MODELS_DIR, paths.TRAIN_METRICS)
            conditioning_file = paths.CONDITIONING_FILE if conditioning is not None else None
            log_generator(tracker, trainer.sampling_generator(), conditioning_file)
            write_run_file(paths.RUN_FILE, tracker)
        else:
            logger.info("%s: done; the chief writes the outputs", cluster.name)
    return stage.exit_code


if __name__ == "__main__":
    sys.exit(main())
