"""Standing BatchNorm statistics: moving averages refitted to a generator's own weights.

A BatchNorm layer normalizes by its batch's statistics in training and by moving averages
of them at sampling time. Those averages fit the weights they were gathered under; a
generator whose weights came from elsewhere (the EMA of G's weights) needs its own. As in
BigGAN's "standing statistics" (Brock et al. 2019), each layer's moving mean and variance
become the plain average of its batch statistics over a few batches run through the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import keras
import tensorflow as tf

from sagan import randomness
from sagan.model.conditioning import Conditioning, model_inputs
from sagan.model.layers import ConditionalBatchNormalization

# The noise stream of those faces: a purpose no training draw reaches (the progress grids
# use 2**31 - 1 and - 2).
_STANDING_PURPOSE = 2**31 - 3


def batch_norms(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's BatchNorm layers, conditional ones' inner normalization included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, ConditionalBatchNormalization):
            found.append(layer.normalize)
    return found


def refit_batch_norm(model: keras.Model, batches: Iterable) -> None:
    """Set every moving mean and variance to the mean of its batch statistics over ``batches``.

    A running average with momentum k / (k + 1) at batch k (from 0) is the plain mean: the
    first batch replaces what was there, and batch k enters with weight 1 / (k + 1).
    """
    layers = batch_norms(model)
    momenta = [layer.momentum for layer in layers]
    try:
        for k, inputs in enumerate(batches):
            for layer in layers:
                layer.momentum = k / (k + 1)
            model(inputs, training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


def standing_inputs(
    latent_dim: int,
    seed: int,
    batch_size: int,
    count: int,
    conditioning: Conditioning | None = None,
) -> Iterator:
    """``count // batch_size`` batches of fixed noise (and, for a conditional generator,
    attributes drawn at training frequencies): the same for the same seed every time."""
    stream = tf.constant([seed, _STANDING_PURPOSE], tf.int64)
    for index in range(count // batch_size):
        noise_seed, attribute_seed = randomness.split(randomness.fold_in(stream, index), 2)
        z = randomness.normal((batch_size, latent_dim), noise_seed)
        attributes = None
        if conditioning is not None:
            attributes = conditioning.encode(conditioning.draw(batch_size, attribute_seed))
        yield model_inputs(z, attributes)
