"""The train stage's work: checked data, conditioning, the settings, the MLflow run, the loop
and the files it leaves for the later stages (``stages/train.py`` is its frame).
"""

from __future__ import annotations

import logging
from pathlib import Path

import tensorflow as tf

from sagan import paths
from sagan.config import Config, ConfigError, check_progressive_budget
from sagan.data.manifest import Manifest
from sagan.data.pipeline import make_dataset, read_labels
from sagan.evaluation.validation import validation_scorer
from sagan.files import atomic_path, sha256, write_json
from sagan.model.conditioning import Conditioning, conditioning_from_labels
from sagan.model.saved import DISCRIMINATOR, EMA_GENERATOR, GENERATOR
from sagan.paths import CONDITIONING_FILE
from sagan.sampling.served import log_generator
from sagan.stage import Stage
from sagan.tracking import (
    MlflowTracker,
    NullTracker,
    TrackingError,
    reopen_run,
    run_tags,
    start_run,
    write_run_file,
)
from sagan.training.checkpoints import fingerprint
from sagan.training.cluster import join, read_cluster
from sagan.training.loop import TrainPaths, total_steps, train
from sagan.training.perceptual import vgg19_weights_file
from sagan.training.settings import TrainingSettings, make_strategy, resolve_settings
from sagan.training.step import GANTrainer

logger = logging.getLogger(__name__)
RUN_FILE_IN_CHECKPOINTS = "mlflow_run.json"


def run_training(config: Config, stage: Stage, tf_config: str | None, log: logging.Logger) -> None:
    """Train ``config`` from data/prepared into models/, metrics/ and plots/, in ``stage``.

    ``tf_config``: the TF_CONFIG of a multi-worker job (None: one process). ``log``: the
    stage's logger, for its first lines (what precision and XLA resolved to).
    """
    settings = resolve_settings(config)
    log.info("precision: %s", settings.precision.reason)
    log.info("XLA: %s", settings.xla.reason)
    manifest = prepared_manifest(config, paths.PREPARED_DIR)
    conditioning = training_conditioning(config, manifest, paths.PREPARED_DIR)
    num_images = manifest.splits["train"].count
    if config.train.progressive is not None:  # train.epochs' budget is known only now
        check_progressive_budget(config.train, total_steps(config, num_images))
    if config.train.perceptual_weight > 0:
        vgg19_weights_file(config.train)  # downloaded here, before any run or checkpoint
    cluster = read_cluster(config.train.strategy, tf_config)
    if config.train.deterministic:  # before the strategy: it creates the devices' contexts
        tf.config.experimental.enable_op_determinism()
    if cluster is None:
        strategy = make_strategy(config.train.strategy)
    else:  # the job forms before anything is written, or the stage ends after worker_wait
        strategy = join(cluster, config.train.worker_wait)
    settings = settings.under(strategy)
    scorer = None
    if config.train.eval_every is not None:
        scorer = validation_scorer(config, paths.PREPARED_DIR, conditioning)
    chief = cluster is None or cluster.is_chief
    tracker = NullTracker()
    if chief:
        # Everything after the run is open is tracked, so that no failure or Ctrl-C
        # (building the models takes seconds) leaves the run marked RUNNING.
        manifest_file = paths.PREPARED_DIR / paths.MANIFEST_NAME
        tracker = stage.track(open_tracking(settings, manifest_file, paths.CHECKPOINTS_DIR))
    trainer = GANTrainer(settings, conditioning)
    dataset = make_dataset(
        paths.PREPARED_DIR,
        "train",
        config.train.batch_size,
        seed=config.train.seed,
        with_labels=conditioning is not None,
    )
    train_paths = TrainPaths(checkpoints=paths.CHECKPOINTS_DIR, plots=paths.TRAIN_PLOTS_DIR)
    metrics = train(trainer, dataset, num_images, train_paths, tracker, chief, scorer)
    if not chief:
        log.info("%s: done; the chief writes the outputs", cluster.name)
        return
    save_outputs(trainer, metrics, paths.MODELS_DIR, paths.TRAIN_METRICS)
    conditioning_file = paths.CONDITIONING_FILE if conditioning is not None else None
    log_generator(tracker, trainer.sampling_generator(), conditioning_file)
    write_run_file(paths.RUN_FILE, tracker)


def prepared_manifest(config: Config, data_dir: Path) -> Manifest:
    """The manifest of the prepared data, checked against ``data.image_size``."""
    manifest = Manifest.read(data_dir)
    if manifest.image_size != config.data.image_size:
        raise ConfigError(
            f"data.image_size is {config.data.image_size} but {data_dir} holds "
            f"{manifest.image_size}px images: rerun prepare (dvc repro)"
        )
    return manifest


def training_conditioning(
    config: Config, manifest: Manifest, data_dir: Path
) -> Conditioning | None:
    """The attributes ``model.condition_on`` names, with their training-split distribution.

    None for an unconditional model; names the manifest lacks are a ConfigError.
    """
    if not config.model.conditional:
        return None
    return conditioning_from_labels(
        config.model.condition_on,
        manifest.attribute_names,
        manifest.attribute_classes,
        read_labels(data_dir, "train"),
    )


def open_tracking(
    settings: TrainingSettings, manifest_file: Path, checkpoints_dir: Path
) -> MlflowTracker:
    """Reopen the run of the checkpoints we resume from, or start a new one.

    The run id lives beside the checkpoints, so a killed run's rerun reports into its run.
    """
    config = settings.config
    run_file = checkpoints_dir / fingerprint(settings) / RUN_FILE_IN_CHECKPOINTS
    if run_file.is_file():
        try:
            return reopen_run(config, run_file)
        except TrackingError as error:
            logger.warning("cannot reopen the interrupted run (%s); starting a new one", error)
    tracker = start_run(config, run_tags(sha256(manifest_file)), run_file=run_file)
    tracker.log_params(
        {
            "train.mixed_precision_resolved": settings.precision.policy,
            "train.jit_compile_resolved": settings.xla.jit_compile,
        }
    )
    return tracker


def save_outputs(
    trainer: GANTrainer, metrics: dict[str, float], models_dir: Path, metrics_file: Path
) -> None:
    """The models (and the conditioning) into ``models_dir``, the final metrics as JSON."""
    models = {GENERATOR: trainer.generator, DISCRIMINATOR: trainer.discriminator}
    if trainer.ema_generator is not None:
        models[EMA_GENERATOR] = trainer.sampling_generator()  # its own BatchNorm statistics
    for name, model in models.items():
        with atomic_path(models_dir / name) as temporary:
            model.save(temporary)
    if trainer.conditioning is not None:
        trainer.conditioning.save(models_dir / CONDITIONING_FILE.name)
    write_json(metrics_file, metrics)
