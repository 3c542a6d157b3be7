"""Drawing faces from a trained generator: noise, batches, latent walks, attribute sweeps.

Generate's random streams of a seed: ``(seed, 0)`` the samples' noise, ``(seed, 1)`` the
interpolation's ends, ``(seed, 2)`` the samples' attributes (conditional models).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from sagan import randomness
from sagan.model.conditioning import Conditioning, model_inputs, read_conditioning, sweep_codes
from sagan.sampling.grids import to_uint8

_FIXED_NOISE_PURPOSE = 2**31 - 1  # a seed stream of its own, apart from the training draws
_FIXED_ATTRIBUTES_PURPOSE = 2**31 - 2  # and one for the attributes that go with that noise
_ATTRIBUTES_STREAM = 2


def generator_conditioning(generator: keras.Model, path: Path) -> Conditioning | None:
    """What a conditional generator is conditioned on (train's ``path``); None if unconditional."""
    return None if len(generator.inputs) == 1 else read_conditioning(path)


def fixed_noise(seed: int, latent_dim: int, count: int) -> tf.Tensor:
    """The noise of the training progress grids (and the attention figures) of a seed."""
    stream = tf.constant([seed, _FIXED_NOISE_PURPOSE], tf.int64)
    return randomness.normal((count, latent_dim), stream)


def fixed_attributes(conditioning: Conditioning | None, seed: int, count: int) -> tf.Tensor | None:
    """One-hot attributes (count, K) for :func:`fixed_noise`, drawn at training frequencies.

    None for an unconditional model. The first n are the same whatever ``count``, so the
    attention figures' faces are the first faces of the training grids.
    """
    if conditioning is None:
        return None
    stream = tf.constant([seed, _FIXED_ATTRIBUTES_PURPOSE], tf.int64)
    return conditioning.encode(conditioning.draw(count, stream))


def latent_noise(latent_dim: int, count: int, seed: int) -> tf.Tensor:
    """The samples' noise (count, latent_dim); the first n are the same whatever ``count``."""
    return randomness.normal((count, latent_dim), (seed, 0))


def latent_batches(latent_dim: int, count: int, seed: int, batch_size: int) -> Iterator[tf.Tensor]:
    """``count`` noise vectors in batches, the same for the same seed whatever the batch size."""
    noise = latent_noise(latent_dim, count, seed)
    for start in range(0, count, batch_size):
        yield noise[start : start + batch_size]


def sample_codes(conditioning: Conditioning, count: int, seed: int) -> np.ndarray:
    """(count, k) classes of the samples' attributes, at the frequencies of ``conditioning``."""
    return conditioning.draw(count, (seed, _ATTRIBUTES_STREAM)).numpy()


def sample_images(
    generator: keras.Model,
    count: int,
    seed: int,
    batch_size: int = 250,
    attributes: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """uint8 (B, S, S, 3) batches of ``count`` images from a fixed seed, with a progress bar.

    A conditional generator gets ``attributes`` (count, K), one one-hot row per image.
    """
    forward = inference_graph(generator)
    latent_dim = generator.inputs[0].shape[-1]
    with tqdm(total=count, desc="generate", unit="img", dynamic_ncols=True) as progress:
        done = 0
        for z in latent_batches(latent_dim, count, seed, batch_size):
            rows = None if attributes is None else attributes[done : done + len(z)]
            images = to_uint8(forward(model_inputs(z, rows)).numpy())
            done += len(images)
            progress.update(len(images))
            yield images


def inference_graph(generator: keras.Model) -> Callable:
    """G's sampling pass (``training=False``) as one graph, traced again only for new shapes.

    Everything that draws faces for people to compare calls it, so that one seed gives the
    same faces whoever draws them.
    """
    return tf.function(
        lambda inputs: generator(inputs, training=False),
        reduce_retracing=True,
        autograph=False,  # G branches on Python values only: nothing to rewrite
    )


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between two latent vectors at fractions ``t`` (shape (T,))."""
    cos_omega = np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b))
    omega = np.arccos(np.clip(cos_omega, -1.0, 1.0))
    t = t[:, None]
    if omega < 1e-6:  # (nearly) parallel: the straight line is the arc
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def interpolation(
    generator: keras.Model, seed: int, steps: int = 10, attributes: np.ndarray | None = None
) -> np.ndarray:
    """uint8 (steps, S, S, 3): faces along the great circle between two seeded noises.

    A conditional generator keeps the one-hot ``attributes`` (1, K) all along the walk.
    """
    latent_dim = generator.inputs[0].shape[-1]
    ends = randomness.normal((2, latent_dim), (seed, 1)).numpy()
    z = slerp(ends[0], ends[1], np.linspace(0.0, 1.0, steps)).astype(np.float32)
    rows = None if attributes is None else np.repeat(attributes, steps, axis=0)
    return to_uint8(generator(model_inputs(z, rows), training=False).numpy())


def attribute_sweep(
    generator: keras.Model, conditioning: Conditioning, z: np.ndarray, base: np.ndarray
) -> np.ndarray:
    """uint8 (k·F, C, S, S, 3): for each attribute, then each face, one attribute switched.

    Face f is noise ``z[f]`` with the classes ``base[f]`` (F, k); its row shows it with the
    attribute at each of its classes (off, on for a binary one), every other input the same.
    C is the most classes of any attribute; rows of fewer classes end in black.
    """
    columns = max(conditioning.classes)
    rows = []
    for attribute, classes in enumerate(conditioning.classes):
        codes = sweep_codes(conditioning, base, attribute).reshape(-1, base.shape[1])  # (F·c, k)
        inputs = model_inputs(np.repeat(z, classes, axis=0), conditioning.encode(codes))
        faces = to_uint8(generator(inputs, training=False).numpy())  # (F·c, S, S, 3)
        faces = faces.reshape(len(base), classes, *faces.shape[1:])  # (F, c, S, S, 3)
        padding = np.zeros((len(base), columns - classes, *faces.shape[2:]), np.uint8)
        rows.append(np.concatenate([faces, padding], axis=1))
    return np.concatenate(rows)
