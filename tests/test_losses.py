"""Each loss against a value worked out by hand on fixed logits."""

import numpy as np
import pytest
import tensorflow as tf

from sagan.training import losses

REAL = tf.constant([[2.0], [0.5], [-1.0]])
FAKE = tf.constant([[-2.0], [0.0], [1.5]])


def test_hinge_losses():
    # relu(1 - [2, 0.5, -1]) = [0, 0.5, 2] -> 2.5 / 3
    # relu(1 + [-2, 0, 1.5]) = [0, 1, 2.5] -> 3.5 / 3
    assert float(losses.hinge_d_loss(REAL, FAKE)) == pytest.approx(2.5 / 3 + 3.5 / 3)
    assert float(losses.hinge_g_loss(FAKE)) == pytest.approx(-(-2.0 + 0.0 + 1.5) / 3)


def test_bce_losses():
    real_term = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(-0.5)), np.log1p(np.exp(1.0))])
    fake_term = np.mean([np.log1p(np.exp(-2.0)), np.log(2.0), np.log1p(np.exp(1.5))])
    assert float(losses.bce_d_loss(REAL, FAKE)) == pytest.approx(real_term + fake_term, rel=1e-6)
    g_term = np.mean([np.log1p(np.exp(2.0)), np.log(2.0), np.log1p(np.exp(-1.5))])
    assert float(losses.bce_g_loss(FAKE)) == pytest.approx(g_term, rel=1e-6)


def test_wasserstein_losses():
    assert float(losses.wasserstein_d_loss(REAL, FAKE)) == pytest.approx(-0.5 / 3 - 1.5 / 3)
    assert float(losses.wasserstein_g_loss(FAKE)) == pytest.approx(0.5 / 3)


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = sum(w * x) has gradient w everywhere: the penalty is (‖w‖ − 1)².
    weights = tf.fill((1, 2, 2, 1), 1.5)  # ‖w‖ = sqrt(4 · 2.25) = 3

    def critic(images, training=False):
        return tf.reduce_sum(images * weights, axis=[1, 2, 3])

    real = tf.ones((2, 2, 2, 1))
    fake = tf.zeros((2, 2, 2, 1))
    alpha = tf.constant([0.2, 0.9], shape=(2, 1, 1, 1))
    assert float(losses.gradient_penalty(critic, real, fake, alpha)) == pytest.approx(4.0, rel=1e-5)


def test_r1_of_a_quadratic_critic_is_its_hand_computed_gradient_norm():
    # D(x) = Σ w·x²/2 has gradient w·x: R1 = mean over images of Σ (w·x)².
    weights = tf.constant([[[[1.0], [2.0]], [[0.5], [-1.0]]]])  # (1, 2, 2, 1)

    def critic(images, training=False):
        return tf.reduce_sum(weights * tf.square(images) / 2, axis=[1, 2, 3])

    real = tf.constant([[[[1.0], [1.0]], [[2.0], [0.0]]], [[[0.0], [-1.0]], [[4.0], [3.0]]]])
    # image 1: (1·1)² + (2·1)² + (0.5·2)² + 0 = 6; image 2: 0 + 4 + 4 + 9 = 17
    assert float(losses.r1_penalty(critic, real)) == pytest.approx((6 + 17) / 2, rel=1e-6)


def test_losses_are_selected_by_name():
    assert losses.get_losses("hinge").discriminator is losses.hinge_d_loss
    assert losses.get_losses("bce").generator is losses.bce_g_loss
    with pytest.raises(ValueError, match="train.loss"):
        losses.get_losses("least_squares")
