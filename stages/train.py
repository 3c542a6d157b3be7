"""DVC stage `train`: the SAGAN training loop, checkpointed and tracked in MLflow.

Reads data/prepared, writes models/ (generator, discriminator, the EMA generator when kept,
the MLflow run id and, for a conditional model, attributes.json: the conditioned attributes
and their training-split distribution), metrics/train.json and plots/train/, and keeps
checkpoints/ across runs so that a killed run resumes where its last checkpoint left it.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import tensorflow as tf

from sagan import paths
from sagan.config import Config, ConfigError, load_config
from sagan.data.errors import DataError
from sagan.data.pipeline import make_dataset, read_labels, read_manifest
from sagan.files import atomic_path, sha256, sweep_temporaries, write_json
from sagan.model.conditioning import Conditioning, conditioning_from_labels
from sagan.tracking import (
    MlflowTracker,
    TrackingError,
    reopen_run,
    run_tags,
    start_run,
    write_run_file,
)
from sagan.training.checkpoints import CheckpointError, fingerprint
from sagan.training.loop import NonFiniteLossError, TrainPaths, train
from sagan.training.step import GANTrainer, make_strategy

logger = logging.getLogger("stages.train")
RUN_FILE_IN_CHECKPOINTS = "mlflow_run.json"


def open_tracking(config: Config, manifest_path: Path) -> MlflowTracker:
    """Reopen the run of the checkpoints we resume from, or start a new one."""
    run_file = paths.CHECKPOINTS_DIR / fingerprint(config) / RUN_FILE_IN_CHECKPOINTS
    if run_file.is_file():
        try:
            return reopen_run(config, run_file)
        except TrackingError as error:
            logger.warning("cannot reopen the interrupted run (%s); starting a new one", error)
    return start_run(config, run_tags(sha256(manifest_path)), run_file=run_file)


def load_conditioning(config: Config, manifest: dict) -> Conditioning | None:
    """The conditioned attributes, checked against the manifest (None when unconditional)."""
    if not config.model.conditional:
        return None
    return conditioning_from_labels(
        config.model.condition_on,
        manifest["attribute_names"],
        manifest["attribute_classes"],
        read_labels(paths.PREPARED_DIR, "train"),
    )


def save_outputs(trainer: GANTrainer, metrics: dict[str, float]) -> None:
    models = {"generator": trainer.generator, "discriminator": trainer.discriminator}
    if trainer.ema_generator is not None:
        models["generator_ema"] = trainer.ema_generator
    for name, model in models.items():
        with atomic_path(paths.MODELS_DIR / f"{name}.keras") as temporary:
            model.save(temporary)
    if trainer.conditioning is not None:
        trainer.conditioning.save(paths.CONDITIONING_FILE)
    write_json(paths.TRAIN_METRICS, metrics)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Before anything is written, so a killed run's temporaries are never published (metrics/
    # is shared, but DVC runs one stage at a time in a workspace).
    for folder in (
        paths.CHECKPOINTS_DIR,
        paths.TRAIN_PLOTS_DIR,
        paths.MODELS_DIR,
        paths.TRAIN_METRICS.parent,
    ):
        sweep_temporaries(folder)
    try:
        config = load_config()
        manifest = read_manifest(paths.PREPARED_DIR)
        if manifest["image_size"] != config.data.image_size:
            raise ConfigError(
                f"data.image_size is {config.data.image_size} but {paths.PREPARED_DIR} holds "
                f"{manifest['image_size']}px images: rerun prepare (dvc repro)"
            )
        conditioning = load_conditioning(config, manifest)
        tracker = open_tracking(config, paths.PREPARED_DIR / paths.MANIFEST_NAME)
    except (ConfigError, DataError, TrackingError) as error:
        logger.error("%s", error)
        return 1

    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    train_paths = TrainPaths(checkpoints=paths.CHECKPOINTS_DIR, plots=paths.TRAIN_PLOTS_DIR)
    # Everything after the run is open sits in this try, so that no failure or Ctrl-C
    # (building the models takes seconds) leaves the run marked RUNNING.
    try:
        trainer = GANTrainer(
            config.model,
            config.train,
            config.data.image_size,
            make_strategy(config.train.strategy),
            conditioning,
        )
        dataset = make_dataset(
            paths.PREPARED_DIR,
            "train",
            config.train.batch_size,
            seed=config.train.seed,
            with_labels=conditioning is not None,
        )
        metrics = train(
            config, trainer, dataset, manifest["splits"]["train"]["count"], train_paths, tracker
        )
        save_outputs(trainer, metrics)
        tracker.log_generator(trainer.sampling_generator())
        write_run_file(paths.RUN_FILE, tracker)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        tracker.finish("KILLED")
        logger.error("interrupted; rerun the stage to resume from the last checkpoint")
        return 130
    except (NonFiniteLossError, CheckpointError) as error:
        tracker.finish("FAILED")
        logger.error("%s", error)
        return 1
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
