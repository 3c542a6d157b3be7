"""The EMA generator (``train.ema_decay``): an exponential moving average of G's weights.

It copies G for the first ``train.ema_start`` updates (an average of the earliest, random
weights would only blur it), then averages. Its BatchNorm statistics are not averaged but
refitted whenever it samples (:func:`~sagan.model.batchnorm.refit_batch_norm`): the moving
averages G gathers fit G's weights, not the average's.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def update_ema(
    average: keras.Model, model: keras.Model, step: tf.Variable, start: int, decay: float
) -> None:
    """average ← decay·average + (1 − decay)·w for trainable weights; a plain copy of the rest
    (and of everything until ``step`` passes ``start``)."""
    started = step > start
    decay = tf.where(started, decay, 0.0)
    for averaged, weight in zip(average.weights, model.weights, strict=True):
        if weight.trainable:
            averaged.assign(decay * averaged + (1.0 - decay) * weight)
        else:
            averaged.assign(weight)
