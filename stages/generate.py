"""DVC stage `generate`: sample faces from the trained generator.

Writes samples/images/NNNNNN.png (``generate.num_samples`` of them, from ``generate.seed``),
samples/grid.png (the first 64 as an 8×8 grid) and samples/interpolation.png (a latent
walk), and logs the grid and the walk to the pipeline's MLflow run.

A conditional generator draws each sample's attributes from the training split's
combinations at their frequencies, keeping those fixed by ``generate.attributes``. It also
writes samples/attributes.csv (each image's classes, for evaluate) and samples/sweep.png:
for each conditioned attribute, ``SWEEP_FACES`` rows (the first samples' z and attributes)
with that one attribute at each of its classes, off then on for a binary one.
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

import keras
import numpy as np

from sagan import paths
from sagan.config import Config, ConfigError, GenerateConfig, load_config
from sagan.files import atomic_directory
from sagan.model.conditioning import Conditioning
from sagan.sampling.faces import (
    attribute_sweep,
    generator_conditioning,
    interpolation,
    latent_noise,
    load_generator,
    sample_codes,
    sample_images,
)
from sagan.sampling.grids import grid, save_png
from sagan.tracking import TrackingError, reopen_run

logger = logging.getLogger("stages.generate")
GRID_SIDE = 8
SWEEP_FACES = 4
FIGURES = ("grid.png", "interpolation.png", "sweep.png")


def sample_distribution(generator: keras.Model, config: Config) -> Conditioning | None:
    """What the samples' attributes are drawn from; None for an unconditional generator."""
    conditioning = generator_conditioning(generator, paths.CONDITIONING_FILE)
    if conditioning is None:
        if config.generate.attributes:
            raise ConfigError(
                "generate.attributes fixes attributes of a conditional model, but "
                f"{paths.MODELS_DIR} holds an unconditional one: set it to null, or train "
                "with model.conditional: true"
            )
        return None
    return conditioning.fixing(config.generate.attributes, "generate.attributes")


def write_attributes(path: Path, conditioning: Conditioning, codes: np.ndarray) -> None:
    """One row per sample image: its file name and the class of each conditioned attribute."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *conditioning.names])
        writer.writerows([f"{i:06d}.png", *row] for i, row in enumerate(codes.tolist()))


def write_samples(
    generator: keras.Model,
    config: GenerateConfig,
    out_dir: Path,
    conditioning: Conditioning | None = None,
) -> None:
    """All samples, the grid, the interpolation strip (and the sweep) into ``out_dir``."""
    codes = (
        None
        if conditioning is None
        else sample_codes(conditioning, config.num_samples, config.seed)
    )
    attributes = None if codes is None else conditioning.encode(codes).numpy()
    with atomic_directory(out_dir) as staging:
        images_dir = staging / paths.SAMPLE_IMAGES.relative_to(paths.SAMPLES_DIR)
        first = []
        index = 0
        batches = sample_images(
            generator, config.num_samples, config.seed, config.batch_size, attributes
        )
        for batch in batches:
            for image in batch:
                save_png(image, images_dir / f"{index:06d}.png")
                index += 1
            first.extend(batch[: GRID_SIDE**2 - len(first)])
        save_png(grid(np.stack(first), GRID_SIDE), staging / "grid.png")
        walk = interpolation(
            generator,
            config.seed,
            config.interpolation_steps,
            None if attributes is None else attributes[:1],
        )
        save_png(grid(walk, len(walk)), staging / "interpolation.png")
        if conditioning is not None:
            write_attributes(
                staging / paths.SAMPLE_ATTRIBUTES.relative_to(paths.SAMPLES_DIR),
                conditioning,
                codes,
            )
            faces = min(SWEEP_FACES, config.num_samples)
            z = latent_noise(generator.inputs[0].shape[-1], faces, config.seed).numpy()
            sweep = attribute_sweep(generator, conditioning, z, codes[:faces])
            save_png(
                grid(sweep.reshape(-1, *sweep.shape[2:]), sweep.shape[1]), staging / "sweep.png"
            )


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config()
        # Before the run is reopened: a missing model, or one refused in safe mode (it would
        # run code on load), or attributes it cannot honour, is one line and exit 1, and
        # leaves the run as train left it.
        generator = load_generator(paths.MODELS_DIR)
        conditioning = sample_distribution(generator, config)
        tracker = reopen_run(config, paths.RUN_FILE)
    except (ConfigError, TrackingError, FileNotFoundError, ValueError) as error:
        logger.error("%s", error)
        return 1
    try:
        write_samples(generator, config.generate, paths.SAMPLES_DIR, conditioning)
        for name in FIGURES:
            if (paths.SAMPLES_DIR / name).is_file():
                tracker.log_artifact(paths.SAMPLES_DIR / name, "generate")
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish()
    logger.info("wrote %d samples to %s", config.generate.num_samples, paths.SAMPLES_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
