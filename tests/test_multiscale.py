"""The multi-scale discriminator: each scale's D on the pooled image, where attention goes,
the losses and the gradient penalty averaged over scales (the config's checks of
model.discriminator_scales are in test_config)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from sagan.model.layers import SelfAttention
from sagan.model.networks import build_discriminator
from sagan.training.checkpoints import run_identity
from sagan.training.losses import LOSSES, gradient_penalty, per_scale_losses
from sagan.training.settings import resolve_settings
from tests.helpers import fingerprint_of, tiny_config, tiny_model


def _copy_scale(source, target, prefix: str) -> None:
    """Give ``target`` (a single D) the weights of ``source``'s layers ``prefix`` + its names."""
    for layer in target.layers:
        if layer.weights:
            name = layer.name.replace("sn_", f"sn_{prefix}", 1)
            if not name.startswith(("sn_", prefix)):
                name = f"{prefix}{name}"
            target.get_layer(layer.name).set_weights(source.get_layer(name).get_weights())


def _average_pool(images: np.ndarray, factor: int) -> np.ndarray:
    batch, size, _, channels = images.shape
    blocks = images.reshape(batch, size // factor, factor, size // factor, factor, channels)
    return blocks.mean(axis=(2, 4))


@pytest.mark.parametrize("conditional", [False, True])
def test_each_scale_is_the_reference_d_on_the_average_pooled_image(conditional):
    # At 64px both scales attend at 16x16 (the 32px copy after its first block).
    model = tiny_model(conditional, discriminator_scales=(1, 2))
    attribute_dim = 5 if conditional else None
    multi = build_discriminator(model, 64, attribute_dim)
    single = dataclasses.replace(model, discriminator_scales=(1,))
    full = build_discriminator(single, 64, attribute_dim)
    half = build_discriminator(single, 32, attribute_dim)
    _copy_scale(multi, full, "")
    _copy_scale(multi, half, "scale2_")

    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (4, 64, 64, 3)).astype(np.float32)
    attributes = np.eye(5, dtype=np.float32)[[0, 1, 2, 3]]

    def inputs(x):
        return [x, attributes] if conditional else x

    logits = multi(inputs(images)).numpy()
    assert logits.shape == (4 // model.pack, 2)  # one row per pack (the unconditional D packs 2)
    np.testing.assert_allclose(logits[:, 0:1], full(inputs(images)), rtol=1e-5, atol=1e-5)
    pooled = _average_pool(images, 2)
    np.testing.assert_allclose(logits[:, 1:2], half(inputs(pooled)), rtol=1e-5, atol=1e-5)


def test_the_default_single_scale_is_todays_discriminator():
    default = build_discriminator(tiny_model())
    names = [layer.name for layer in default.layers if layer.weights]
    assert names == ["sn_down1", "sn_down2", "attention_16", "sn_down3", "sn_logit"]
    assert default.output.shape == (None, 1)
    off = tiny_config()
    identity = run_identity(resolve_settings(off))
    assert "discriminator_scales" not in identity["model"]
    assert not {"perceptual_weight", "perceptual_layers"} & set(identity["train"])
    two = dataclasses.replace(off, model=tiny_model(discriminator_scales=(1, 2)))
    assert fingerprint_of(two) != fingerprint_of(off)


def test_each_scale_attends_where_its_feature_maps_reach_the_attention_resolutions():
    model = tiny_model(discriminator_scales=(1, 2, 4), attention_resolutions=(16,))
    discriminator = build_discriminator(model, 64)
    attention = [layer.name for layer in discriminator.layers if isinstance(layer, SelfAttention)]
    # 64px: 32, 16, 8; the 32px copy: 16, 8; the 16px copy: 8 only.
    assert sorted(attention) == ["attention_16", "scale2_attention_16"]
    assert discriminator.output.shape == (None, 3)


def test_losses_average_over_scales():
    rng = np.random.default_rng(1)
    real = tf.constant(rng.normal(size=(6, 3)), tf.float32)
    fake = tf.constant(rng.normal(size=(6, 3)), tf.float32)
    for name, loss in LOSSES.items():
        per_scale = per_scale_losses(loss.discriminator, real, fake)
        assert len(per_scale) == 3
        assert float(loss.discriminator(real, fake)) == pytest.approx(
            float(np.mean(per_scale)), rel=1e-6
        ), name


def test_the_gradient_penalty_of_a_multi_scale_critic_averages_each_scales_penalty():
    """Linear critics D_s(x) = ⟨w_s, x⟩ have ∇D_s = w_s, so the penalty is mean_s (‖w_s‖ − 1)²."""
    rng = np.random.default_rng(2)
    weights = (rng.normal(size=(2, 4 * 4 * 3)) * [[0.1], [0.5]]).astype(np.float32)

    def critic(x, training):
        return tf.matmul(tf.reshape(x, (-1, 48)), weights, transpose_b=True)  # (B, 2)

    real, fake = (tf.constant(rng.uniform(-1, 1, (5, 4, 4, 3)), tf.float32) for _ in range(2))
    alpha = tf.constant(rng.uniform(size=(5, 1, 1, 1)), tf.float32)
    got = gradient_penalty(critic, real, fake, alpha)
    expected = np.mean((np.linalg.norm(weights, axis=1) - 1.0) ** 2)
    assert float(got) == pytest.approx(expected, rel=1e-5)
