"""The train stage around the loop: checked data, conditioning, the MLflow run, saved models.

What the stage checks in the prepared data, the attributes it conditions on, the MLflow run
it reports into, and the files it leaves for the later stages.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sagan.config import Config, ConfigError
from sagan.data.manifest import Manifest
from sagan.data.pipeline import read_labels
from sagan.files import atomic_path, sha256, write_json
from sagan.hardware import resolve_jit_compile, resolve_precision
from sagan.model.conditioning import Conditioning, conditioning_from_labels
from sagan.model.saved import DISCRIMINATOR, EMA_GENERATOR, GENERATOR
from sagan.paths import CONDITIONING_FILE
from sagan.tracking import MlflowTracker, TrackingError, reopen_run, run_tags, start_run
from sagan.training.checkpoints import fingerprint
from sagan.training.step import GANTrainer

logger = logging.getLogger(__name__)
RUN_FILE_IN_CHECKPOINTS = "mlflow_run.json"


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


def open_tracking(config: Config, manifest_file: Path, checkpoints_dir: Path) -> MlflowTracker:
    """Reopen the run of the checkpoints we resume from, or start a new one.

    The run id lives beside the checkpoints, so a killed run's rerun reports into its run.
    """
    run_file = checkpoints_dir / fingerprint(config) / RUN_FILE_IN_CHECKPOINTS
    if run_file.is_file():
        try:
            return reopen_run(config, run_file)
        except TrackingError as error:
            logger.warning("cannot reopen the interrupted run (%s); starting a new one", error)
    tracker = start_run(config, run_tags(sha256(manifest_file)), run_file=run_file)
    precision = resolve_precision(config.train.mixed_precision).policy
    jit_compile = resolve_jit_compile(config.train).jit_compile
    tracker.log_params(
        {"train.mixed_precision_resolved": precision, "train.jit_compile_resolved": jit_compile}
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
