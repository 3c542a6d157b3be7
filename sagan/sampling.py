"""Drawing faces from a trained generator: batches, grids and latent interpolations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from sagan import layers  # noqa: F401  (registers the custom layers with Keras)
from sagan.conditioning import Conditioning, load_conditioning
from sagan.imaging import to_uint8

EMA_GENERATOR = "generator_ema.keras"
GENERATOR = "generator.keras"
DISCRIMINATOR = "discriminator.keras"
_FIXED_NOISE_PURPOSE = 2**31 - 1  # a seed stream of its own, apart from the training draws
_FIXED_ATTRIBUTES_PURPOSE = 2**31 - 2  # and one for the attributes that go with that noise


def load_model(path: Path) -> keras.Model:
    """A saved model in safe mode: files that would run arbitrary code on load are refused."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no {path}: run the train stage first")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except ValueError as error:
        raise ValueError(f"cannot load {path}: {error}") from error


def load_generator(models_dir: Path) -> keras.Model:
    """The EMA generator when training kept one, else the generator."""
    ema = Path(models_dir) / EMA_GENERATOR
    return load_model(ema if ema.is_file() else Path(models_dir) / GENERATOR)


def generator_conditioning(generator: keras.Model, path: Path) -> Conditioning | None:
    """What a conditional generator is conditioned on (train's ``path``); None if unconditional."""
    return None if len(generator.inputs) == 1 else load_conditioning(path)


def fixed_noise(seed: int, latent_dim: int, count: int) -> tf.Tensor:
    """The noise of the training progress grids (and the attention figures) of a seed."""
    stream = tf.constant([seed, _FIXED_NOISE_PURPOSE], tf.int64)
    return tf.random.stateless_normal((count, latent_dim), stream)


def fixed_attributes(conditioning: Conditioning | None, seed: int, count: int) -> tf.Tensor | None:
    """One-hot attributes (count, K) for :func:`fixed_noise`, drawn at training frequencies.

    None for an unconditional model. The first n are the same whatever ``count``, so the
    attention figures' faces are the first faces of the training grids.
    """
    if conditioning is None:
        return None
    stream = tf.constant([seed, _FIXED_ATTRIBUTES_PURPOSE], tf.int64)
    return conditioning.encode(conditioning.draw(count, stream))


def latent_batches(latent_dim: int, count: int, seed: int, batch_size: int) -> Iterator[tf.Tensor]:
    """``count`` noise vectors in batches, the same for the same seed whatever the batch size."""
    noise = tf.random.stateless_normal((count, latent_dim), seed=(seed, 0))
    for start in range(0, count, batch_size):
        yield noise[start : start + batch_size]


def sample_images(
    generator: keras.Model, count: int, seed: int, batch_size: int = 250
) -> Iterator[np.ndarray]:
    """uint8 (B, S, S, 3) batches of ``count`` images from a fixed seed, with a progress bar."""
    forward = tf.function(lambda z: generator(z, training=False), reduce_retracing=True)
    latent_dim = generator.input_shape[-1]
    with tqdm(total=count, desc="generate", unit="img", dynamic_ncols=True) as progress:
        for z in latent_batches(latent_dim, count, seed, batch_size):
            images = to_uint8(forward(z).numpy())
            progress.update(len(images))
            yield images


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between two latent vectors at fractions ``t`` (shape (T,))."""
    cos_omega = np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b))
    omega = np.arccos(np.clip(cos_omega, -1.0, 1.0))
    t = t[:, None]
    if omega < 1e-6:  # (nearly) parallel: the straight line is the arc
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def interpolation(generator: keras.Model, seed: int, steps: int = 10) -> np.ndarray:
    """uint8 (steps, S, S, 3): faces along the great circle between two seeded noises."""
    latent_dim = generator.input_shape[-1]
    ends = tf.random.stateless_normal((2, latent_dim), seed=(seed, 1)).numpy()
    z = slerp(ends[0], ends[1], np.linspace(0.0, 1.0, steps)).astype(np.float32)
    return to_uint8(generator(z, training=False).numpy())
