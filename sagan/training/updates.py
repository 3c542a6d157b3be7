"""The update paths of one replica, one function each, and the parts they are built from.

A generator update runs ``train.n_critic`` critic steps, each on a fresh real batch. Which
function runs a critic step is fixed when the trainer is built (:func:`pick_updates`):

- :func:`shared_backward_update`, the default (``train.update: simultaneous``, its last
  critic step): D's and G's updates from one forward and one backward pass through D;
- :func:`two_backwards_update`: the same two updates with one tape each, where the shared
  pass cannot stand in for them (gradient penalty, R1, float16 loss scaling, a multi-scale
  D, the minibatch standard deviation);
- :func:`discriminator_update`: D alone (the earlier critic steps, and every critic step of
  ``train.update: alternating``);
- :func:`generator_update`: G alone, on fresh noise through the freshly updated D
  (``alternating``, after the critic steps).

Options plug in at named points of :class:`Parts`: ``augment`` (DiffAugment of what D
sees), ``consistency`` (λ_cr·‖D(x) − D(T(x))‖² in L_D), ``penalty`` (λ·GP in L_D), ``r1``
(γ/2·R1 in L_D, on the updates that take it) and ``perceptual`` (λ·P in L_G). Each is None
or 0 when off.

Distribution: each replica divides its mean loss by the number of replicas, so the
all-reduced (summed) gradients are those of the global mean; metrics are returned as each
replica's share of the global mean, summed afterwards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import keras
import tensorflow as tf

from sagan.model.conditioning import model_inputs
from sagan.training.augment import augment, consistency_transform
from sagan.training.draws import Draws
from sagan.training.losses import (
    AdversarialLoss,
    consistency_loss,
    gradient_penalty,
    per_scale_losses,
    r1_penalty,
)
from sagan.training.perceptual import perceptual_loss, vgg_input

SUM = tf.distribute.ReduceOp.SUM
# What a fake image's logit sends back through D where the D loss sends nothing: small
# enough that D's gradient cannot tell, large enough that the images' gradients stay normal
# numbers in float32 and bfloat16 (both reach 1e-38).
COTANGENT_FLOOR = 2.0**-32


class Half(NamedTuple):
    """One half of a critic step's batch: images (or G's noise) and, when conditional, their
    one-hot attributes."""

    images: tf.Tensor
    attributes: tf.Tensor | None


class Logits(NamedTuple):
    """D's logits on one critic step's halves."""

    real: tf.Tensor
    fake: tf.Tensor
    transformed: tf.Tensor | None  # on the real half flipped and shifted (consistency reg.)


@dataclasses.dataclass(frozen=True)
class Perceptual:
    """λ·P: the VGG19 feature gap between the real and the generated half, over the global
    batch (:mod:`sagan.training.perceptual`)."""

    network: keras.Model
    weight: float


@dataclasses.dataclass(frozen=True)
class Parts:
    """What an update works with: the stage's two networks, their optimizers, the loss, the
    options, and how the global batch is split."""

    generator: keras.Model
    discriminator: keras.Model
    g_optimizer: keras.optimizers.Optimizer
    d_optimizer: keras.optimizers.Optimizer
    loss: AdversarialLoss
    replicas: int
    pack: int  # images per D input (model.pack)
    scales: tuple[int, ...]  # the multi-scale D's factors (model.discriminator_scales)
    augment: tuple[str, ...] | None = None  # DiffAugment's transforms
    consistency: float = 0.0  # λ_cr
    penalty: float = 0.0  # λ of the gradient penalty
    r1: float = 0.0  # R1's weight in L_D on this update: γ/2 × train.r1_every (lazy), or 0
    perceptual: Perceptual | None = None


# -- the default update --------------------------------------------------------------------


def shared_backward_update(
    parts: Parts, real: Half, fake: Half, draws: Draws, critic: int
) -> dict[str, tf.Tensor]:
    """D's and G's updates from one backward pass through D; G's gradient sees D as it was
    before D's update.

    Each fake image's logit receives a cotangent u_D from L_D and u_G from L_G. D treats
    images independently (no BatchNorm; a packed D, each pack, whose images share their
    logit's ratio), and backpropagation is linear in the cotangent, so the gradient an image
    gets for G is its gradient under u_D times u_G / u_D. The pass sends u_D, which gives D's
    weight gradient, and rescales each image's gradient for G. Where u_D is 0 (hinge: D
    already rejects that fake by the margin), it sends u_G·2⁻³², a relative change to D's
    gradient far below float32's rounding. The perceptual term depends on G only through
    the images: its image gradient is added to what reaches G.
    """
    with tf.GradientTape(persistent=True) as tape:
        fake_images = generate(parts, fake)
        logits = judge(parts, real, Half(fake_images, fake.attributes), draws, critic)
        extra = perceptual_terms(parts, real.images, fake_images)
        perceptual_scaled = scaled(parts, parts.g_optimizer, weighted(parts, extra))
    outputs = [logit for logit in logits if logit is not None]
    with tf.GradientTape(persistent=True) as loss_tape:
        loss_tape.watch(outputs)
        d_loss = adversarial_d_loss(parts, logits)
        g_loss = parts.loss.generator(logits.fake)
        d_scaled = scaled(parts, parts.d_optimizer, d_loss)
        g_scaled = scaled(parts, parts.g_optimizer, g_loss)
    u_real, u_fake, *u_transformed = loss_tape.gradient(d_scaled, outputs)
    u_generator = loss_tape.gradient(g_scaled, logits.fake)
    floor = COTANGENT_FLOOR * u_generator
    sent = tf.where(tf.abs(u_fake) >= tf.abs(floor), u_fake, floor)
    *d_gradients, image_gradients = tape.gradient(
        outputs,
        [*parts.discriminator.trainable_variables, fake_images],
        output_gradients=[u_real, sent, *u_transformed],
    )
    per_logit = tf.math.divide_no_nan(u_generator, sent)
    per_image = tf.reshape(tf.repeat(per_logit, parts.pack, axis=0), (-1, 1, 1, 1))
    image_gradients *= tf.cast(per_image, image_gradients.dtype)
    if extra:
        perceptual_gradients = tape.gradient(perceptual_scaled, fake_images)
        image_gradients += tf.cast(perceptual_gradients, image_gradients.dtype)
    g_gradients = tape.gradient(
        fake_images, parts.generator.trainable_variables, output_gradients=image_gradients
    )
    apply(parts.d_optimizer, d_gradients, parts.discriminator)
    apply(parts.g_optimizer, g_gradients, parts.generator)
    terms = logit_terms(parts, logits)
    return means(parts, d_loss=d_loss, g_loss=g_loss, **terms, **extra)


# -- the other update paths ----------------------------------------------------------------


def two_backwards_update(
    parts: Parts, real: Half, fake: Half, draws: Draws, critic: int
) -> dict[str, tf.Tensor]:
    """D's and G's updates from one forward pass, with one tape each: two backward passes
    through D's fake half."""
    with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
        fake_images = generate(parts, fake)
        fake = Half(fake_images, fake.attributes)
        d_objective, logits, d_terms = discriminator_loss(parts, real, fake, draws, critic)
        g_loss = parts.loss.generator(logits.fake)
        extra = perceptual_terms(parts, real.images, fake_images)
        d_scaled = scaled(parts, parts.d_optimizer, d_objective)
        g_scaled = scaled(parts, parts.g_optimizer, g_loss + weighted(parts, extra))
    d_gradients = d_tape.gradient(d_scaled, parts.discriminator.trainable_variables)
    g_gradients = g_tape.gradient(g_scaled, parts.generator.trainable_variables)
    apply(parts.d_optimizer, d_gradients, parts.discriminator)
    apply(parts.g_optimizer, g_gradients, parts.generator)
    return means(parts, **d_terms, g_loss=g_loss, **logit_terms(parts, logits), **extra)


def discriminator_update(
    parts: Parts, real: Half, fake: Half, draws: Draws, critic: int
) -> dict[str, tf.Tensor]:
    """D's update alone: G's images are drawn outside the tape (no G backward)."""
    fake = Half(generate(parts, fake), fake.attributes)
    with tf.GradientTape() as tape:
        d_objective, logits, d_terms = discriminator_loss(parts, real, fake, draws, critic)
        d_scaled = scaled(parts, parts.d_optimizer, d_objective)
    d_gradients = tape.gradient(d_scaled, parts.discriminator.trainable_variables)
    apply(parts.d_optimizer, d_gradients, parts.discriminator)
    return means(parts, **d_terms, **logit_terms(parts, logits))


def generator_update(
    parts: Parts, real: Half, fake: Half, draws: Draws, critic: int
) -> dict[str, tf.Tensor]:
    """G's update alone, through D as the critic steps left it (``critic`` = n_critic)."""
    with tf.GradientTape() as tape:
        fake_images = generate(parts, fake)
        seen = see(parts, fake_images, draws, critic, "fake")
        fake_logits = discriminate(parts, Half(seen, fake.attributes), training=True)
        g_loss = parts.loss.generator(fake_logits)
        extra = perceptual_terms(parts, real.images, fake_images)
        g_scaled = scaled(parts, parts.g_optimizer, g_loss + weighted(parts, extra))
    g_gradients = tape.gradient(g_scaled, parts.generator.trainable_variables)
    apply(parts.g_optimizer, g_gradients, parts.generator)
    return means(parts, g_loss=g_loss, **extra)


Update = Callable[[Parts, Half, Half, Draws, int], dict[str, tf.Tensor]]


def pick_updates(
    simultaneous: bool, shares_backward: bool, n_critic: int
) -> tuple[list[Update], Update | None]:
    """The function of each critic step, and G's own update (``alternating`` only)."""
    if not simultaneous:
        return [discriminator_update] * n_critic, generator_update
    joint = shared_backward_update if shares_backward else two_backwards_update
    return [discriminator_update] * (n_critic - 1) + [joint], None


# -- the parts of an update ----------------------------------------------------------------


def generate(parts: Parts, fake: Half) -> tf.Tensor:
    """G's images of ``fake``'s noise (and attributes)."""
    return parts.generator(model_inputs(*fake), training=True)


def discriminate(parts: Parts, half: Half, training: bool) -> tf.Tensor:
    return parts.discriminator(model_inputs(*half), training=training)


def see(parts: Parts, images: tf.Tensor, draws: Draws, critic: int, half: str) -> tf.Tensor:
    """The images as D sees them: through DiffAugment when ``train.augment`` is set."""
    if parts.augment is None:
        return images
    return augment(images, parts.augment, draws.augment_key(critic, half), draws.rows())


def judge(parts: Parts, real: Half, fake: Half, draws: Draws, critic: int) -> Logits:
    """D's logits on the fake and the real half as it sees them and, with consistency
    regularisation, on the real half flipped and shifted."""
    # In D, `training` only drives the spectral norms' power iteration (D has no
    # BatchNorm): the fake call refines u once and the real calls reuse it, so every half
    # sees the same σ. Separate calls rather than one on [real; fake] let G's gradient run
    # back through the fake half alone.
    fake_seen = Half(see(parts, fake.images, draws, critic, "fake"), fake.attributes)
    fake_logits = discriminate(parts, fake_seen, training=True)
    real_seen = Half(see(parts, real.images, draws, critic, "real"), real.attributes)
    real_logits = discriminate(parts, real_seen, training=False)
    transformed_logits = None
    if parts.consistency > 0:
        key = draws.consistency_key(critic)
        transformed = consistency_transform(real_seen.images, key, draws.rows())
        transformed_logits = discriminate(parts, Half(transformed, real.attributes), False)
    return Logits(real_logits, fake_logits, transformed_logits)


def adversarial_d_loss(parts: Parts, logits: Logits) -> tf.Tensor:
    """L_D [+ λ_cr·‖D(x) − D(T(x))‖²]: the terms of D's loss that its logits give."""
    loss = parts.loss.discriminator(logits.real, logits.fake)
    if logits.transformed is not None:
        loss += parts.consistency * consistency_loss(logits.real, logits.transformed)
    return loss


def discriminator_loss(
    parts: Parts, real: Half, fake: Half, draws: Draws, critic: int
) -> tuple[tf.Tensor, Logits, dict[str, tf.Tensor]]:
    """What D minimises, L_D [+ λ_cr·CR] [+ λ·GP] [+ γ/2·R1]; D's logits; and the terms to
    log: ``d_loss`` (all but R1, so that its rows compare between the updates that take R1
    and those that do not) and, where R1 is taken, ``r1_penalty`` (R1 itself)."""
    logits = judge(parts, real, fake, draws, critic)
    loss = adversarial_d_loss(parts, logits)

    # The interpolates carry the real attributes, as in StudioGAN's penalty.
    def critic_of(images, training):
        return discriminate(parts, Half(images, real.attributes), training)

    if parts.penalty > 0:
        mix = draws.mix(critic, parts.pack)
        penalty = gradient_penalty(critic_of, real.images, fake.images, mix, parts.pack)
        loss += parts.penalty * penalty
    terms = {"d_loss": loss}
    if parts.r1 > 0:
        # The gradient with respect to the real images before DiffAugment, through it (as
        # StyleGAN2-ADA takes it): the same transform as the real half's in ``judge``.
        def critic_of_seen(images, training):
            return critic_of(see(parts, images, draws, critic, "real"), training)

        terms["r1_penalty"] = r1_penalty(critic_of_seen, real.images, parts.pack)
        loss += parts.r1 * terms["r1_penalty"]
    return loss, logits, terms


def perceptual_terms(parts: Parts, real_images, fake_images) -> dict[str, tf.Tensor]:
    """``{"perceptual_loss": P}`` of this step's global batch; empty when it is off.

    Each replica's batch means are summed over the replicas (an all-reduce whose gradient is
    an all-reduce too), so P is the global batch's on every replica.
    """
    if parts.perceptual is None:
        return {}
    context = tf.distribute.get_replica_context()

    def global_means(images) -> list[tf.Tensor]:
        features = parts.perceptual.network(vgg_input(images), training=False)
        batch_means = [tf.reduce_mean(tf.cast(f, tf.float32), axis=0) for f in features]
        shares = [mean / parts.replicas for mean in batch_means]
        return context.all_reduce(SUM, shares) if parts.replicas > 1 else shares

    real_means = [tf.stop_gradient(m) for m in global_means(real_images)]
    return {"perceptual_loss": perceptual_loss(real_means, global_means(fake_images))}


def weighted(parts: Parts, extra: dict[str, tf.Tensor]) -> tf.Tensor | float:
    """λ·P, what the perceptual term adds to G's loss (0 when it is off)."""
    if not extra:
        return 0.0
    return parts.perceptual.weight * extra["perceptual_loss"]


def logit_terms(parts: Parts, logits: Logits) -> dict[str, tf.Tensor]:
    """What the logits tell about D: ``d_real``, ``d_fake``, L_D of each scale's D
    (``d_loss_scale<factor>``, for a multi-scale D) and ‖D(x) − D(T(x))‖²
    (``consistency_loss``, with consistency regularisation)."""
    terms = {"d_real": logits.real, "d_fake": logits.fake}
    if len(parts.scales) > 1:
        losses = per_scale_losses(parts.loss.discriminator, logits.real, logits.fake)
        terms |= {f"d_loss_scale{f}": loss for f, loss in zip(parts.scales, losses, strict=True)}
    if logits.transformed is not None:
        terms["consistency_loss"] = consistency_loss(logits.real, logits.transformed)
    return terms


def scaled(parts: Parts, optimizer: keras.optimizers.Optimizer, loss) -> tf.Tensor:
    """This replica's share of the global mean loss, times the float16 loss scale.

    Call it inside the tape: the gradient is taken of what it returns.
    """
    return optimizer.scale_loss(loss / parts.replicas)


def apply(optimizer: keras.optimizers.Optimizer, gradients: list, model: keras.Model) -> None:
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))


def means(parts: Parts, **values: tf.Tensor) -> dict[str, tf.Tensor]:
    """This replica's share of each global mean (summed over replicas afterwards)."""
    return {name: tf.reduce_mean(value) / parts.replicas for name, value in values.items()}
