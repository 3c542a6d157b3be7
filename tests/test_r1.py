"""R1 (``train.r1_weight``, ``train.r1_every``): its value on packs and scales, its gradient in
D's update, and the lazy schedule. Every loss, precision, resume and replicas: with the other
options in test_mode_levers and test_training."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from sagan.model.layers import Pack
from sagan.training import updates
from sagan.training.draws import Draws
from sagan.training.losses import r1_penalty
from sagan.training.settings import resolve_settings
from sagan.training.step import GANTrainer
from sagan.training.updates import Half
from tests.helpers import images, tiny_config
from tests.test_training import GradientRecorder


def test_r1_of_a_packed_multi_scale_critic_averages_each_scales_norm_over_the_pack():
    """Linear critics D_s(pack) = ⟨w_s, pack⟩ have the gradient w_s with respect to the pack:
    R1 = mean_s ‖w_s‖²."""
    rng = np.random.default_rng(4)
    weights = tf.constant(rng.normal(size=(2, 1, 2, 2, 6)).astype("float32"))

    def critic(images, training):
        packs = Pack(2)(images)
        return tf.stack([tf.reduce_sum(packs * w, axis=[1, 2, 3]) for w in weights], axis=-1)

    real = tf.constant(rng.normal(size=(4, 2, 2, 3)).astype("float32"))
    expected = np.mean([np.sum(w**2) for w in weights.numpy()])
    np.testing.assert_allclose(r1_penalty(critic, real, pack=2).numpy(), expected, rtol=1e-5)


def test_an_r1_update_descends_the_hinge_loss_plus_its_weight_times_r1():
    """D's gradient on an update that takes R1 is ∇(L_D + w·R1), R1 = mean ‖∇ₓD(x)‖² over the
    packs of real images worked out here with two tapes; G's is unchanged."""
    trainer = GANTrainer(resolve_settings(tiny_config()))
    discriminator = trainer.discriminator
    draws = Draws(0, trainer.step, 8, 8)
    real = Half(next(iter(images())), None)
    fake = Half(tf.random.stateless_normal((8, 16), (0, 1)), None)
    state = discriminator.get_weights()  # the power iteration's u changes per call

    def gradients(weight):
        discriminator.set_weights(state)
        recorders = {"d_optimizer": GradientRecorder(), "g_optimizer": GradientRecorder()}
        parts = dataclasses.replace(trainer.parts, r1=weight, **recorders)
        metrics = updates.two_backwards_update(parts, real, fake, draws, 0)
        d, g = (recorders[name].gradients for name in ("d_optimizer", "g_optimizer"))
        return [x.numpy() for x in d], [x.numpy() for x in g], metrics

    d_plain, g_plain, plain = gradients(0.0)
    d_with, g_with, regularised = gradients(3.0)

    discriminator.set_weights(state)
    fake_images = Half(updates.generate(trainer.parts, fake), None)
    updates.judge(trainer.parts, real, fake_images, draws, 0)  # refines u, as the update does
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(real.images)
            logits = discriminator(real.images, training=False)  # one logit per pack of 2
        squares = tf.reduce_sum(tf.square(inner.gradient(logits, real.images)), axis=[1, 2, 3])
        r1 = tf.reduce_mean(tf.reduce_sum(tf.reshape(squares, (-1, 2)), axis=1))
    r1_gradients = outer.gradient(r1, discriminator.trainable_variables)

    assert "r1_penalty" not in plain
    assert float(regularised["r1_penalty"]) == pytest.approx(float(r1), rel=1e-5)
    assert float(r1) > 0
    assert float(regularised["d_loss"]) == pytest.approx(float(plain["d_loss"]), rel=1e-6)
    scale = max(np.abs(g).max() for g in d_with)
    for got, without, extra in zip(d_with, d_plain, r1_gradients, strict=True):
        extra = 0.0 if extra is None else extra.numpy()  # the logit's bias: no input gradient
        np.testing.assert_allclose(got, without + 3.0 * extra, rtol=1e-4, atol=1e-6 * scale)
    for got, without in zip(g_with, g_plain, strict=True):
        np.testing.assert_allclose(got, without, rtol=1e-5, atol=1e-8)


def _updates(count: int, first: int = 1, **options) -> tuple[list[set], list[np.ndarray]]:
    """``count`` updates of a tiny trainer from update ``first`` on (the same first batch
    whatever ``first``): the metric names of each, and D's weights after."""
    trainer = GANTrainer(resolve_settings(tiny_config(**options)))
    trainer.step.assign(first - 1)
    iterator = iter(images())
    names = [set(trainer.train_step(iterator)) for _ in range(count)]
    return names, trainer.discriminator.get_weights()


def test_lazy_r1_takes_every_kth_update_at_k_times_its_weight():
    """γ 0.5 every 2nd update: updates 1 and 3 plain, 2 with R1 at 2 × 0.5 / 2, the weight
    γ 1 gives R1 on every update."""
    trainer = GANTrainer(resolve_settings(tiny_config(r1_weight=0.5, r1_every=2)))
    assert [trainer.takes_r1(update) for update in range(1, 7)] == [False, True] * 3
    assert not any(GANTrainer(resolve_settings(tiny_config())).takes_r1(u) for u in range(1, 7))

    lazy_names, _ = _updates(3, r1_weight=0.5, r1_every=2)
    assert ["r1_penalty" in names for names in lazy_names] == [False, True, False]
    _, lazy = _updates(1, first=2, r1_weight=0.5, r1_every=2)
    _, eager = _updates(1, first=2, r1_weight=1.0, r1_every=1)
    _, plain = _updates(1, first=2)
    for a, b in zip(lazy, eager, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(lazy, plain, strict=True))

    # By hand: update 2 on the same batch and noise, L_D + 0.5·R1 (k·γ/2, not k·γ).
    by_hand = GANTrainer(resolve_settings(tiny_config()))
    by_hand.step.assign(1)
    draws = Draws(0, by_hand.step, 8, 8)
    fake = Half(draws.noise(0, 16), None)
    real = Half(next(iter(images())), None)
    updates.two_backwards_update(dataclasses.replace(by_hand.parts, r1=0.5), real, fake, draws, 0)
    for a, b in zip(lazy, by_hand.discriminator.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-7)  # eager vs graph, through Adam
