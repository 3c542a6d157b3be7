"""Standing BatchNorm statistics: moving averages refitted to a generator's own weights.

A BatchNorm layer normalizes by its batch's statistics in training and by moving averages
of them at sampling time. Those averages fit the weights they were gathered under; a
generator whose weights came from elsewhere (the EMA of G's weights) needs its own. As in
BigGAN's "standing statistics" (Brock et al. 2019), each layer's moving mean and variance
become the plain average of its batch statistics over a few batches run through the model.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras

from sagan.model.layers import ConditionalBatchNormalization


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
