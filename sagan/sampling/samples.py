"""Generate's output folder: the sample images, their attributes, the grid, the walk, the sweep.

``samples/images/NNNNNN.png`` (``generate.num_samples`` of them, from ``generate.seed``),
``grid.png`` (the first 64 as an 8×8 grid) and ``interpolation.png`` (a latent walk). A
conditional generator draws each sample's attributes from the training split's combinations
at their frequencies, keeping those fixed by ``generate.attributes``; its folder also holds
``attributes.csv`` (each image's classes, for evaluate) and ``sweep.png``: for each
conditioned attribute, ``SWEEP_FACES`` rows (the first samples' z and attributes) with that
one attribute at each of its classes, off then on for a binary one.
"""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np

from sagan import paths
from sagan.config import ConfigError, GenerateConfig
from sagan.files import atomic_directory
from sagan.model.conditioning import Conditioning
from sagan.sampling.faces import (
    attribute_sweep,
    generator_conditioning,
    interpolation,
    latent_noise,
    sample_codes,
    sample_images,
)
from sagan.sampling.grids import grid, save_png

GRID_SIDE = 8
SWEEP_FACES = 4
FIGURES = ("grid.png", "interpolation.png", "sweep.png")  # the ones worth logging


def sample_distribution(
    generator: keras.Model, settings: GenerateConfig, conditioning_file: Path
) -> Conditioning | None:
    """What the samples' attributes are drawn from; None for an unconditional generator."""
    conditioning = generator_conditioning(generator, conditioning_file)
    if conditioning is None:
        if settings.attributes:
            raise ConfigError(
                "generate.attributes fixes attributes of a conditional model, but "
                f"{conditioning_file.parent} holds an unconditional one: set it to null, or "
                "train with model.conditional: true"
            )
        return None
    return conditioning.fixing(settings.attributes, "generate.attributes")


def write_attributes(path: Path, conditioning: Conditioning, codes: np.ndarray) -> None:
    """One row per sample image: its file name and the class of each conditioned attribute."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *conditioning.names])
        writer.writerows([f"{i:06d}.png", *row] for i, row in enumerate(codes.tolist()))


def write_samples(
    generator: keras.Model,
    settings: GenerateConfig,
    out_dir: Path,
    conditioning: Conditioning | None = None,
) -> None:
    """All samples, the grid, the interpolation strip (and the sweep) into ``out_dir``."""
    codes = (
        None
        if conditioning is None
        else sample_codes(conditioning, settings.num_samples, settings.seed)
    )
    attributes = None if codes is None else conditioning.encode(codes).numpy()
    with atomic_directory(out_dir) as staging:
        images_dir = staging / paths.SAMPLE_IMAGES.relative_to(paths.SAMPLES_DIR)
        first = []
        index = 0
        batches = sample_images(
            generator, settings.num_samples, settings.seed, settings.batch_size, attributes
        )
        for batch in batches:
            for image in batch:
                save_png(image, images_dir / f"{index:06d}.png")
                index += 1
            first.extend(batch[: GRID_SIDE**2 - len(first)])
        save_png(grid(np.stack(first), GRID_SIDE), staging / "grid.png")
        walk = interpolation(
            generator,
            settings.seed,
            settings.interpolation_steps,
            None if attributes is None else attributes[:1],
        )
        save_png(grid(walk, len(walk)), staging / "interpolation.png")
        if conditioning is not None:
            write_attributes(
                staging / paths.SAMPLE_ATTRIBUTES.relative_to(paths.SAMPLES_DIR),
                conditioning,
                codes,
            )
            faces = min(SWEEP_FACES, settings.num_samples)
            z = latent_noise(generator.inputs[0].shape[-1], faces, settings.seed).numpy()
            sweep = attribute_sweep(generator, conditioning, z, codes[:faces])
            save_png(
                grid(sweep.reshape(-1, *sweep.shape[2:]), sweep.shape[1]), staging / "sweep.png"
            )
