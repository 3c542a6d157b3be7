"""The attention stage's figures: where the trained G and D look, and how that moved in training.

- ``<network>_<layer>.png``: ``attention.num_images`` fixed-noise faces (the first of the
  training grids), each query point's attention map laid over them;
- ``<network>_<layer>_over_training.png``: the first face's maps at up to
  ``MAX_TRAINING_ROWS`` snapshots, evenly spread over training.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from sagan.config import Config
from sagan.model.conditioning import Conditioning
from sagan.sampling.attention_figures import overlay_figure, save_figure
from sagan.sampling.attention_maps import IMAGE_KEY, generated_maps, query_maps, read_snapshots
from sagan.sampling.faces import fixed_attributes, fixed_noise
from sagan.sampling.grids import to_uint8

MAX_TRAINING_ROWS = 6
NETWORKS = {"g": "generator", "d": "discriminator"}  # the maps' key prefixes


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
    for key in (k for k in chosen[-1][1] if k != IMAGE_KEY):
        prefix, layer = key.split("_", 1)
        # A progressive run's layers of a later resolution join during training.
        having = [(step, arrays) for step, arrays in chosen if key in arrays]
        faces = np.stack([arrays[IMAGE_KEY] for _, arrays in having])
        maps = np.stack([arrays[key].astype(np.float32) for _, arrays in having])
        figure = overlay_figure(
            faces,
            query_maps(maps, points),
            config.attention.queries,
            [f"step {step}" for step, _ in having],
            f"{NETWORKS[prefix]} {layer} over training (the first fixed-noise face)",
        )
        save_figure(figure, out_dir / f"{NETWORKS[prefix]}_{layer}_over_training.png")
