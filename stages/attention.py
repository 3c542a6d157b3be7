"""DVC stage `attention`: where the trained G and D look, and how γ and σ moved.

Reads models/ and plots/train/ (the history and the attention snapshots training saved),
writes plots/attention/:

- ``<network>_<layer>.png``: ``attention.num_images`` fixed-noise faces (the first of the
  training grids), each query point's attention map laid over them;
- ``<network>_<layer>_over_training.png``: the first face's maps at up to
  ``MAX_TRAINING_ROWS`` snapshots, evenly spread over training;
- ``gamma_sigma.png``: γ of every attention layer against the reference's range, and σ.

Every figure is also logged to the pipeline's MLflow run.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import keras
import numpy as np

from sagan import paths
from sagan.config import Config, ConfigError, load_config
from sagan.files import atomic_directory
from sagan.model.conditioning import Conditioning
from sagan.sampling.attention_figures import curves_figure, overlay_figure, save_figure
from sagan.sampling.attention_maps import IMAGE_KEY, generated_maps, query_maps, read_snapshots
from sagan.sampling.faces import (
    DISCRIMINATOR,
    fixed_attributes,
    fixed_noise,
    generator_conditioning,
    load_generator,
    load_model,
)
from sagan.sampling.grids import to_uint8
from sagan.tracking import TrackingError, reopen_run

logger = logging.getLogger("stages.attention")
MAX_TRAINING_ROWS = 6
NETWORKS = {"g": "generator", "d": "discriminator"}


def final_figures(
    config: Config,
    generator: keras.Model,
    discriminator: keras.Model,
    out_dir: Path,
    conditioning: Conditioning | None = None,
) -> None:
    """The maps of the trained networks on the first fixed-noise faces (and attributes)."""
    count = config.attention.num_images
    z = fixed_noise(config.train.seed, generator.inputs[0].shape[-1], count)
    attributes = fixed_attributes(conditioning, config.train.seed, count)
    images, maps = generated_maps(generator, discriminator, z, attributes)
    points = list(config.attention.queries.values())
    faces = to_uint8(images)
    labels = [f"face {i}" for i in range(len(faces))]
    for key, layer_maps in maps.items():
        prefix, layer = key.split("_", 1)
        figure = overlay_figure(
            faces,
            query_maps(layer_maps, points),
            config.attention.queries,
            labels,
            f"{NETWORKS[prefix]} {layer}: where each query point attends (trained model)",
        )
        save_figure(figure, out_dir / f"{NETWORKS[prefix]}_{layer}.png")


def training_figures(config: Config, snapshots_dir: Path, out_dir: Path) -> None:
    """The first face's maps at snapshots spread evenly over training."""
    snapshots = read_snapshots(snapshots_dir)
    if not snapshots:
        return
    picks = np.unique(np.linspace(0, len(snapshots) - 1, MAX_TRAINING_ROWS).round().astype(int))
    chosen = [snapshots[i] for i in picks]
    points = list(config.attention.queries.values())
    faces = np.stack([arrays[IMAGE_KEY] for _, arrays in chosen])
    labels = [f"step {step}" for step, _ in chosen]
    for key in (k for k in chosen[-1][1] if k != IMAGE_KEY):
        prefix, layer = key.split("_", 1)
        maps = np.stack([arrays[key].astype(np.float32) for _, arrays in chosen])
        figure = overlay_figure(
            faces,
            query_maps(maps, points),
            config.attention.queries,
            labels,
            f"{NETWORKS[prefix]} {layer} over training (the first fixed-noise face)",
        )
        save_figure(figure, out_dir / f"{NETWORKS[prefix]}_{layer}_over_training.png")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config()
        # Before the run is reopened, as in generate: a missing or refused model is one
        # line and exit 1, and leaves the run as train left it.
        generator = load_generator(paths.MODELS_DIR)
        discriminator = load_model(paths.MODELS_DIR / DISCRIMINATOR)
        conditioning = generator_conditioning(generator, paths.CONDITIONING_FILE)
        tracker = reopen_run(config, paths.RUN_FILE)
    except (ConfigError, TrackingError, FileNotFoundError, ValueError) as error:
        logger.error("%s", error)
        return 1
    try:
        with atomic_directory(paths.ATTENTION_PLOTS_DIR) as staging:
            final_figures(config, generator, discriminator, staging, conditioning)
            training_figures(config, paths.ATTENTION_SNAPSHOTS, staging)
            save_figure(
                curves_figure(paths.TRAIN_PLOTS_DIR / "history.csv"), staging / "gamma_sigma.png"
            )
        for figure in sorted(paths.ATTENTION_PLOTS_DIR.glob("*.png")):
            tracker.log_artifact(figure, "attention")
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish()
    logger.info("wrote the attention figures to %s", paths.ATTENTION_PLOTS_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
