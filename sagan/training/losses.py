"""Adversarial losses: hinge (the reference's), non-saturating BCE and Wasserstein (+ GP),
and the regularisers of D: consistency regularisation and R1.

Each loss is a pair of pure functions of the discriminator's logits; ``get_losses`` picks a
pair by the ``train.loss`` name. Every loss is a mean over all logits, so the losses of a
multi-scale D's (B, scales) logits are the average of each scale's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf


def hinge_d_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """L_D = E[relu(1 − D(x))] + E[relu(1 + D(G(z)))]."""
    return tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(
        tf.nn.relu(1.0 + fake_logits)
    )


def hinge_g_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """L_G = −E[D(G(z))]."""
    return -tf.reduce_mean(fake_logits)


def bce_d_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """L_D = E[softplus(−D(x))] + E[softplus(D(G(z)))]  (= −log σ(D(x)) − log(1 − σ(D(G(z)))))."""
    return tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(
        tf.nn.softplus(fake_logits)
    )


def bce_g_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating L_G = E[softplus(−D(G(z)))]  (= −log σ(D(G(z))))."""
    return tf.reduce_mean(tf.nn.softplus(-fake_logits))


def wasserstein_d_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """L_D = E[D(G(z))] − E[D(x)]."""
    return tf.reduce_mean(fake_logits) - tf.reduce_mean(real_logits)


def wasserstein_g_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """L_G = −E[D(G(z))]."""
    return -tf.reduce_mean(fake_logits)


def consistency_loss(logits: tf.Tensor, transformed_logits: tf.Tensor) -> tf.Tensor:
    """Consistency regularisation (Zhang et al. 2020, eq. 2): E‖D(x) − D(T(x))‖², on logits."""
    return tf.reduce_mean(tf.square(logits - transformed_logits))


def gradient_penalty(
    discriminator: Callable[..., tf.Tensor],
    real_images: tf.Tensor,
    fake_images: tf.Tensor,
    alpha: tf.Tensor,
    pack: int = 1,
) -> tf.Tensor:
    """WGAN-GP (Gulrajani et al. 2017, eq. 3): E[(‖∇D(x̂)‖₂ − 1)²] with x̂ = α·x + (1 − α)·G(z).

    ``alpha`` has shape (B, 1, 1, 1) and is drawn from U[0, 1] by the caller, so the random
    source stays the training loop's seeded generator (the caller gives the images of a pack
    one α). Scales and packs as in :func:`squared_gradient_norms`.
    """
    mixed = alpha * real_images + (1.0 - alpha) * fake_images
    per_scale = squared_gradient_norms(discriminator, mixed, pack, training=True)
    penalties = [tf.reduce_mean(tf.square(tf.sqrt(squares + 1e-12) - 1.0)) for squares in per_scale]
    return tf.add_n(penalties) / len(penalties)


def r1_penalty(
    discriminator: Callable[..., tf.Tensor], real_images: tf.Tensor, pack: int = 1
) -> tf.Tensor:
    """R1 (Mescheder et al. 2018, eq. 9, without its γ/2): E[‖∇ₓD(x)‖₂²] on real images x.

    It pushes D's gradient on the data toward 0, so D cannot keep raising its margin on real
    images once G matches them. Scales and packs as in :func:`squared_gradient_norms`; D
    runs with ``training=False``, as on every real half (its spectral norms keep their u).
    """
    per_scale = squared_gradient_norms(discriminator, real_images, pack, training=False)
    return tf.add_n([tf.reduce_mean(squares) for squares in per_scale]) / len(per_scale)


def squared_gradient_norms(
    discriminator: Callable[..., tf.Tensor], images: tf.Tensor, pack: int, training: bool
) -> list[tf.Tensor]:
    """‖∇D‖₂² at ``images``, one (B / pack,) tensor per scale of a multi-scale D.

    A multi-scale D's logits (B, scales) are differentiated one scale at a time. A D that
    packs ``pack`` consecutive images into one input gives one logit per pack: the norm is
    that of its gradient with respect to all of the pack's images.
    """
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(images)
        logits = discriminator(images, training=training)  # (B, scales), or (B,) for one
        per_scale = tf.unstack(logits[:, None] if logits.shape.rank == 1 else logits, axis=-1)
    norms = []
    for scale_logits in per_scale:
        gradients = tape.gradient(scale_logits, images)
        squares = tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3])  # (B,)
        norms.append(tf.reduce_sum(tf.reshape(squares, (-1, pack)), axis=1))  # (B / pack,)
    return norms


def per_scale_losses(
    loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    real_logits: tf.Tensor,
    fake_logits: tf.Tensor,
) -> list[tf.Tensor]:
    """``loss`` of each scale's column of (B, scales) logits; their mean is ``loss`` itself."""
    return [
        loss(real_logits[:, scale : scale + 1], fake_logits[:, scale : scale + 1])
        for scale in range(real_logits.shape[-1])
    ]


class AdversarialLoss(NamedTuple):
    discriminator: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    generator: Callable[[tf.Tensor], tf.Tensor]


LOSSES = {
    "hinge": AdversarialLoss(hinge_d_loss, hinge_g_loss),
    "bce": AdversarialLoss(bce_d_loss, bce_g_loss),
    "wasserstein": AdversarialLoss(wasserstein_d_loss, wasserstein_g_loss),
}


def get_losses(name: str) -> AdversarialLoss:
    """The (discriminator, generator) loss pair named by ``train.loss``."""
    if name not in LOSSES:
        raise ValueError(f"train.loss must be one of {', '.join(LOSSES)}, got {name!r}")
    return LOSSES[name]
