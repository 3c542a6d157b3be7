"""DVC stage `generate`: sample faces from the trained generator.

Writes samples/images/NNNNNN.png (``generate.num_samples`` of them, from ``generate.seed``),
samples/grid.png (the first 64 as an 8×8 grid) and samples/interpolation.png (a latent
walk), and logs the grid and the walk to the pipeline's MLflow run.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import keras
import numpy as np

from sagan import paths
from sagan.atomic import atomic_directory
from sagan.config import ConfigError, GenerateConfig, load_config
from sagan.imaging import grid, save_png
from sagan.sampling import interpolation, load_generator, sample_images
from sagan.tracking import TrackingError, reopen_run

logger = logging.getLogger("stages.generate")
GRID_SIDE = 8


def write_samples(generator: keras.Model, config: GenerateConfig, out_dir: Path) -> None:
    """All samples, the grid and the interpolation strip into ``out_dir``, atomically."""
    with atomic_directory(out_dir) as staging:
        images_dir = staging / paths.SAMPLE_IMAGES.relative_to(paths.SAMPLES_DIR)
        first = []
        index = 0
        for batch in sample_images(generator, config.num_samples, config.seed, config.batch_size):
            for image in batch:
                save_png(image, images_dir / f"{index:06d}.png")
                index += 1
            first.extend(batch[: GRID_SIDE**2 - len(first)])
        save_png(grid(np.stack(first), GRID_SIDE), staging / "grid.png")
        walk = interpolation(generator, config.seed, config.interpolation_steps)
        save_png(grid(walk, len(walk)), staging / "interpolation.png")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config()
        # Before the run is reopened: a missing model, or one refused in safe mode (it would
        # run code on load), is one line and exit 1, and leaves the run as train left it.
        generator = load_generator(paths.MODELS_DIR)
        tracker = reopen_run(config, paths.RUN_FILE)
    except (ConfigError, TrackingError, FileNotFoundError, ValueError) as error:
        logger.error("%s", error)
        return 1
    try:
        write_samples(generator, config.generate, paths.SAMPLES_DIR)
        for name in ("grid.png", "interpolation.png"):
            tracker.log_artifact(paths.SAMPLES_DIR / name, "generate")
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish()
    logger.info("wrote %d samples to %s", config.generate.num_samples, paths.SAMPLES_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
