"""The EMA generator: standing BatchNorm statistics for its own weights, and samples that are
no worse than G's on a small problem."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan.data.pipeline import make_dataset
from sagan.evaluation.metrics import frechet_distance, gaussian_statistics
from sagan.model.batchnorm import batch_norms, refit_batch_norm, standing_inputs
from sagan.model.conditioning import model_inputs
from sagan.model.layers import ConditionalBatchNormalization
from sagan.model.networks import build_generator
from sagan.sampling.faces import fixed_noise
from sagan.training.settings import resolve_settings
from sagan.training.step import GANTrainer
from tests.helpers import (
    BATCH,
    IMAGE_SIZE,
    conditioning,
    fingerprint_of,
    tiny_config,
    tiny_model,
    train_tiny,
)


def _batch_statistics(generator: keras.Model, batches: list) -> list[tuple[np.ndarray, ...]]:
    """Per BatchNorm layer: the mean over ``batches`` of its inputs' batch mean and variance."""
    normalizing = [
        layer
        for layer in generator.layers
        if isinstance(layer, keras.layers.BatchNormalization | ConditionalBatchNormalization)
    ]
    # A conditional layer is called on [features, attributes]: its BatchNorm sees the features.
    inputs = [
        layer.input[0] if isinstance(layer.input, list) else layer.input for layer in normalizing
    ]
    probe = keras.Model(generator.inputs, inputs)
    per_batch = [probe(inputs, training=True) for inputs in batches]
    return [
        tuple(
            np.mean([statistic(np.asarray(b[i], "float64")) for b in per_batch], axis=0)
            for statistic in (lambda x: x.mean(axis=(0, 1, 2)), lambda x: x.var(axis=(0, 1, 2)))
        )
        for i in range(len(normalizing))
    ]


@pytest.mark.parametrize("conditional", [False, True])
def test_standing_statistics_are_the_mean_of_the_batch_statistics(conditional):
    attributes = conditioning() if conditional else None
    dim = attributes.dim if conditional else None
    generator = build_generator(tiny_model(conditional), IMAGE_SIZE, dim)
    batches = []
    for k in range(3):
        z = tf.random.stateless_normal((8, 16), (0, k))
        codes = attributes.encode(attributes.draw(8, (1, k))) if conditional else None
        batches.append(model_inputs(z, codes))
    expected = _batch_statistics(generator, batches)
    assert len(expected) == 2  # project_bn and up1_bn at 32px, plain or conditional
    refit_batch_norm(generator, batches)
    for layer, (mean, variance) in zip(batch_norms(generator), expected, strict=True):
        np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(layer.moving_variance.numpy(), variance, rtol=1e-4, atol=1e-6)
        assert layer.momentum == 0.99  # restored


def test_the_trainer_refits_on_train_standing_samples_faces_outside_the_run_identity():
    config = tiny_config(standing_samples=2 * BATCH)
    trainer = GANTrainer(resolve_settings(config))
    batches = list(standing_inputs(16, config.train.seed, BATCH, 2 * BATCH))
    assert len(batches) == 2
    expected = _batch_statistics(trainer.ema_generator, batches)
    trainer.sampling_generator()
    for layer, (mean, variance) in zip(batch_norms(trainer.ema_generator), expected, strict=True):
        np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(layer.moving_variance.numpy(), variance, rtol=1e-4, atol=1e-6)
    # Every update copies G's BatchNorm statistics over the refit: resuming may change it.
    assert fingerprint_of(config) == fingerprint_of(tiny_config(standing_samples=512))


def _pixel_fid(generator: keras.Model, real: np.ndarray) -> float:
    """Fréchet distance of 4×4-pooled pixels (48 numbers per image): cheap and sufficient
    for colour, contrast and layout."""

    def pooled(images):
        return tf.nn.avg_pool2d(images, IMAGE_SIZE // 4, IMAGE_SIZE // 4, "VALID").numpy()

    fake = generator(fixed_noise(1, 16, len(real)), training=False)
    return frechet_distance(
        gaussian_statistics(pooled(fake).reshape(len(real), -1)),
        gaussian_statistics(pooled(real).reshape(len(real), -1)),
    )


def test_ema_samples_are_no_worse_than_the_generators(prepared_data, tmp_path):
    """A tiny run on the synthetic faces: the EMA generator (standing statistics) draws
    faces at least as close to the data as G, and far closer than the same average with
    G's BatchNorm statistics copied over (the washed-out faces of the old EMA)."""
    config = tiny_config(
        steps=60, ema_decay=0.9, ema_start=30, sample_every=60, standing_samples=512
    )
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, g_lr=4e-4))
    dataset = make_dataset(prepared_data, "train", 8, seed=0)
    trainer, _ = train_tiny(config, tmp_path, dataset)
    real = next(iter(make_dataset(prepared_data, "train", 64, shuffle=False))).numpy()

    generator_fid = _pixel_fid(trainer.generator, real)
    ema_fid = _pixel_fid(trainer.sampling_generator(), real)
    for average, weight in zip(
        batch_norms(trainer.ema_generator), batch_norms(trainer.generator), strict=True
    ):
        average.moving_mean.assign(weight.moving_mean)
        average.moving_variance.assign(weight.moving_variance)
    copied_fid = _pixel_fid(trainer.ema_generator, real)
    print(
        f"pixel FID: G {generator_fid:.3f}, EMA {ema_fid:.3f}, EMA with G's stats {copied_fid:.3f}"
    )
    assert ema_fid <= generator_fid
    assert copied_fid > ema_fid
