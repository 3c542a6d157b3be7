"""Where self-attention looks: the attention maps of chosen query points.

Row p of a self-attention layer's map A = softmax(q kᵀ) is a distribution over the key
positions: where position p of the feature map draws its values from. A query point is
given as (row, column) fractions of the image, so the same point addresses every layer
whatever its resolution (a 16×16 map cuts a 64×64 image into 4×4-pixel cells).

Training saves a snapshot of both networks' maps for the first fixed-noise face with every
sample grid (``attention/step_NNNNNN.npz`` beside ``samples/``), so the attention stage can
show the maps of one face as training went on.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import keras
import numpy as np

from sagan.files import atomic_path
from sagan.model.conditioning import model_inputs
from sagan.model.layers import Pack, SelfAttention
from sagan.sampling.grids import to_uint8, upsample_nearest

SNAPSHOT_PATTERN = re.compile(r"step_(\d+)\.npz")
IMAGE_KEY = "image"


def attention_maps(model: keras.Model, inputs) -> dict[str, np.ndarray]:
    """Every self-attention layer's map for ``inputs``: ``{layer name: (B, HW, keys)}``."""
    maps = {}
    for layer in model.layers:
        if isinstance(layer, SelfAttention):
            # The functional graph gives the feature map that enters the layer; calling
            # the layer on it again with return_attention yields A without a second model.
            features = _up_to_input_of(layer, model)(inputs, training=False)
            _, attention = layer(features, training=False, return_attention=True)
            maps[layer.name] = np.asarray(attention, np.float32)
    return maps


def _up_to_input_of(layer: keras.layers.Layer, model: keras.Model) -> keras.Model:
    """``model`` from its inputs to the feature map entering ``layer``.

    A layer shared by several models (a progressive run's D has one per stage) was called
    once per model; the call in ``model``'s graph is the one its inputs reach.
    """
    for node in layer._inbound_nodes:  # Keras has no public list of a layer's calls
        try:
            return keras.Model(model.input, node.input_tensors[0])
        except ValueError:
            continue
    raise ValueError(f"{layer.name} is not part of {model.name}'s graph")


def query_position(point: tuple[float, float], side: int) -> int:
    """The flat index (row · side + column) of a (row, column) fraction on a side×side map."""
    row, column = (min(int(fraction * side), side - 1) for fraction in point)
    return row * side + column


def query_maps(maps: np.ndarray, points: list[tuple[float, float]]) -> np.ndarray:
    """(B, HW, keys) maps → (B, queries, key side, key side): the rows of the query points."""
    queries_side, keys_side = math.isqrt(maps.shape[1]), math.isqrt(maps.shape[2])
    rows = [query_position(point, queries_side) for point in points]
    return maps[:, rows, :].reshape(maps.shape[0], len(rows), keys_side, keys_side)


def _for_packs(discriminator: keras.Model, images):
    """``images`` as D takes them: a packed D (``model.pack``) judges m images at once, so it
    is shown m copies of each and its maps are those of that face."""
    packs = [layer.size for layer in discriminator.layers if isinstance(layer, Pack)]
    return np.repeat(np.asarray(images), packs[0], axis=0) if packs else images


def generated_maps(
    generator: keras.Model,
    discriminator: keras.Model,
    z: np.ndarray,
    attributes: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """G's images for ``z`` (B, latent) and both networks' maps of them.

    ``attributes`` (B, K) go with ``z`` into a conditional G and with the images into its D.
    Maps are keyed ``g_<layer>`` / ``d_<layer>``; there are none for a model without
    self-attention.
    """
    g_inputs = model_inputs(z, attributes)
    images = generator(g_inputs, training=False)
    d_inputs = model_inputs(_for_packs(discriminator, images), attributes)
    maps = {f"g_{name}": m for name, m in attention_maps(generator, g_inputs).items()}
    maps |= {f"d_{name}": m for name, m in attention_maps(discriminator, d_inputs).items()}
    return np.asarray(images), maps


def save_snapshot(
    generator: keras.Model,
    discriminator: keras.Model,
    z: np.ndarray,
    path: Path,
    attributes: np.ndarray | None = None,
    image_size: int | None = None,
) -> None:
    """:func:`generated_maps` of one noise vector ``z`` (1, latent), as float16 (HW, keys).

    The face is stored at ``image_size`` (a progressive stage's smaller one upsampled), so
    every snapshot of a run shows at one size. Nothing is written for a model without
    self-attention.
    """
    images, maps = generated_maps(generator, discriminator, z, attributes)
    if not maps:
        return
    face = to_uint8(images)
    if image_size is not None:
        face = upsample_nearest(face, image_size)
    arrays = {name: m[0].astype(np.float16) for name, m in maps.items()}
    with atomic_path(path) as temporary, temporary.open("wb") as handle:
        np.savez_compressed(handle, **{IMAGE_KEY: face[0]}, **arrays)


def read_snapshots(directory: Path) -> list[tuple[int, dict[str, np.ndarray]]]:
    """The snapshots in ``directory`` as ``(step, arrays)``, by step; none when it is absent."""
    found = []
    for path in Path(directory).glob("step_*.npz"):
        match = SNAPSHOT_PATTERN.fullmatch(path.name)
        if match:
            with np.load(path) as arrays:
                found.append((int(match.group(1)), {name: arrays[name] for name in arrays.files}))
    return sorted(found, key=lambda item: item[0])
