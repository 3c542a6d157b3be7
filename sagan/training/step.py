"""The SAGAN train step, written against ``tf.distribute``.

One call of :meth:`GANTrainer.train_step` is one generator update (the unit of
``train.steps``) with ``train.n_critic`` discriminator updates, each on a fresh real batch:

    D: L_D(D(x), D(G(z)))  [+ λ·GP]  → Adam(d_lr)      (n_critic times)
    G: L_G(D(G(z)))                   → Adam(g_lr)

``train.update: simultaneous`` (the default, as in TensorFlow's GAN tutorials) takes the
last D update and the G update from one forward pass: G's gradient sees D as it was before
that D update. One backward pass through D then serves both updates (see
:meth:`GANTrainer._shared_backward`): G runs forward and backward once, and D forward and
backward once on each half, where separate updates take two G forwards and three D forwards
and three D backwards.
``alternating`` (the authors' PyTorch code) runs G's update on fresh noise through the
freshly updated D.

Distribution: ``train.batch_size`` is the global batch, split evenly over the replicas.
Each replica divides its mean loss by the number of replicas, so the all-reduced (summed)
gradients are those of the global mean. The generator's BatchNorm is synchronized: its
statistics cover the global batch, so N replicas compute what one device would.

Randomness: every draw is ``tf.random.stateless_*`` keyed by ``(train.seed, step, purpose)``.
The step counter, saved in every checkpoint, is therefore the whole random state: a resumed
run draws exactly the numbers an uninterrupted run would, on any number of replicas (each
replica draws the global batch's noise and keeps its own slice).

``train.augment`` passes every image D sees, real or fake, through DiffAugment
(:mod:`sagan.training.augment`), drawn per image from a stream of its own; G's gradient
runs back through the transforms. The gradient penalty's interpolates are not augmented.

Against dropped modes: ``train.consistency_weight`` λ_cr adds λ_cr·E‖D(x) − D(T(x))‖² to
L_D (Zhang et al. 2020), T a random flip and shift of the real half as D saw it; D must
judge a face and its mirror image alike, not by where things sit. ``model.minibatch_stddev``
and ``model.pack`` are D layers (:mod:`sagan.model.layers`): the step only keeps packs and
groups within each replica's slice, draws one gradient-penalty α per pack, and gives the
images of a pack their logit's ratio in the shared backward pass.

The EMA generator (``train.ema_decay``) averages G's weights after ``train.ema_start``
updates. Its BatchNorm statistics are refitted to its own weights whenever it samples
(:func:`~sagan.model.batchnorm.refit_batch_norm` on the fixed noise of
:func:`~sagan.model.batchnorm.standing_inputs`): the moving averages G gathers fit G's
weights, not the average's.

A multi-scale D (``model.discriminator_scales``) gives each image one logit per scale: the
losses, means over all logits, average the scales, and each scale's L_D is logged as
``d_loss_scale<f>``. ``train.perceptual_weight`` λ adds λ·P to G's loss, P being the
VGG19 feature gap of :mod:`sagan.training.perceptual` between the step's real batch (D's
real half, un-augmented) and G's images, over the global batch; P is logged as
``perceptual_loss``.

Progressive growing (``train.progressive``, :mod:`sagan.model.progressive`): the step trains
the models of the stage that runs the update (:meth:`GANTrainer.begin_update`; a new stage
is traced anew), on real batches average-pooled to the stage's resolution and, during a
fade-in, blended as G's output is. α is computed from the step inside the traced update.
Both Adams hold slots for every stage's variables from the start (a block that is not yet in
the stage gets no gradient and no update), and restart, moments and bias correction, at the
first update of each phase after the first.

Conditional models (a :class:`~sagan.model.conditioning.Conditioning` given): batches are
``(images, labels)``; D sees the real half with its own attributes, and G and D the fake half
with attribute rows drawn from the training split's combinations at their frequencies.
"""

from __future__ import annotations

import functools
import logging
from typing import NamedTuple

import keras
import tensorflow as tf

from sagan.config import ModelConfig, TrainConfig
from sagan.hardware import resolve_jit_compile, resolve_precision
from sagan.model.batchnorm import refit_batch_norm, standing_inputs
from sagan.model.conditioning import Conditioning, model_inputs
from sagan.model.layers import SelfAttention, SpectralNormalization
from sagan.model.networks import build_discriminator, build_generator
from sagan.model.progressive import Growing, grow_discriminator, grow_generator
from sagan.training.augment import augment, consistency_transform
from sagan.training.growth import GrowthSchedule
from sagan.training.losses import (
    consistency_loss,
    get_losses,
    gradient_penalty,
    per_scale_losses,
)
from sagan.training.perceptual import (
    feature_network,
    perceptual_loss,
    vgg19_weights_file,
    vgg_input,
)

logger = logging.getLogger(__name__)
SUM = tf.distribute.ReduceOp.SUM
_DRAWS_PER_STEP = 64  # room for n_critic noise draws, GP draws and the G draw of one step
# Attribute draws count down from below the G noise (purpose 63), apart from 2·critic (+1).
_FIRST_ATTRIBUTE_PURPOSE = _DRAWS_PER_STEP - 2
MAX_CONDITIONAL_CRITICS = _FIRST_ATTRIBUTE_PURPOSE // 3
# What a fake image's logit sends back through D where the D loss sends nothing: small
# enough that D's gradient cannot tell, large enough that the images' gradients stay normal
# numbers in float32 and bfloat16 (both reach 1e-38).
_COTANGENT_FLOOR = 2.0**-32


class Logits(NamedTuple):
    """D's logits on one step's halves."""

    real: tf.Tensor
    fake: tf.Tensor
    transformed: tf.Tensor | None  # on the real half flipped and shifted (consistency reg.)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``auto`` picks MirroredStrategy when more than one GPU is visible, else the default."""
    gpus = len(tf.config.list_logical_devices("GPU"))
    if name == "auto":
        name = "mirrored" if gpus > 1 else "default"
    if name == "mirrored":
        if gpus == 0:
            logger.warning(
                "train.strategy is mirrored but TensorFlow sees no GPU: training on the CPU"
            )
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _adam(learning_rate: float, config: TrainConfig, precision: str) -> keras.optimizers.Optimizer:
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=config.beta_1, beta_2=config.beta_2)
    if precision == "mixed_float16":
        # float16 gradients underflow without a loss scale; bfloat16 has float32's range.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _reset_adam(optimizer: keras.optimizers.Optimizer) -> None:
    """Zero Adam's moments and iteration count (the float16 loss scale keeps its state)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    for variable in inner.variables:
        if variable.name != "learning_rate":
            variable.assign(tf.zeros_like(variable))


class GANTrainer:
    """Generator, discriminator, their optimizers, the optional EMA generator and the step."""

    def __init__(
        self,
        model_config: ModelConfig,
        config: TrainConfig,
        image_size: int,
        strategy: tf.distribute.Strategy | None = None,
        conditioning: Conditioning | None = None,
    ):
        self.config = config
        self.conditioning = conditioning
        self.strategy = strategy or tf.distribute.get_strategy()
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ValueError(
                f"train.batch_size ({config.batch_size}) must be divisible by the "
                f"{replicas} replicas of the {type(self.strategy).__name__}"
            )
        self.replica_batch_size = config.batch_size // replicas
        self.pack = model_config.pack
        group = model_config.minibatch_stddev or 1
        if self.replica_batch_size % (self.pack * group):
            raise ValueError(
                f"model.pack ({self.pack}) × model.minibatch_stddev ({group}) must divide each "
                f"replica's batch ({self.replica_batch_size} of train.batch_size "
                f"{config.batch_size}): a pack or a group must not straddle two replicas"
            )
        if conditioning is not None and config.n_critic > MAX_CONDITIONAL_CRITICS:
            raise ValueError(
                f"train.n_critic is {config.n_critic}; a conditional model allows at most "
                f"{MAX_CONDITIONAL_CRITICS} (each step's random draws must not overlap)"
            )
        if config.consistency_weight > 0 and config.n_critic > MAX_CONDITIONAL_CRITICS:
            raise ValueError(
                f"train.n_critic is {config.n_critic}; train.consistency_weight allows at most "
                f"{MAX_CONDITIONAL_CRITICS} (each step's random draws must not overlap)"
            )
        attribute_dim = None if conditioning is None else conditioning.dim
        self.latent_dim = model_config.latent_dim
        self.image_size = image_size
        self.growth = GrowthSchedule.from_config(config)
        self.scales = model_config.discriminator_scales
        self.losses = get_losses(config.loss)
        self.precision = resolve_precision(config.mixed_precision).policy
        keras.mixed_precision.set_global_policy(
            "float32" if self.precision == "none" else self.precision
        )
        with self.strategy.scope():
            keras.utils.set_random_seed(config.seed)  # initial weights
            self._networks = self._build_networks(model_config, image_size, attribute_dim)
            self.g_optimizer = _adam(config.g_lr, config, self.precision)
            self.d_optimizer = _adam(config.d_lr, config, self.precision)
            self.g_optimizer.build(self._networks["generator"].trainable_variables)
            self.d_optimizer.build(self._networks["discriminator"].trainable_variables)
            self.perceptual = None
            if config.perceptual_weight > 0:
                weights = vgg19_weights_file(config)
                self.perceptual = feature_network(config.perceptual_layers, image_size, weights)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._refitted_at_step = None  # the step of the EMA generator's last standing statistics
        # The gradient penalty makes L_D depend on the fake images outside their logits,
        # float16 would flush the floor's tiny image gradients to zero, a multi-scale D
        # gives each image one logit per scale, whose cotangents no single ratio maps, and
        # the minibatch stddev makes each logit depend on the other images of its group.
        self.shares_backward = (
            config.gp_weight == 0
            and self.precision != "mixed_float16"
            and len(self.scales) == 1
            and model_config.minibatch_stddev is None
        )
        self.stage = None
        if self.growth is None:
            self._trace()
        else:
            self.use_stage_of(1)

    def _build_networks(
        self, model_config: ModelConfig, image_size: int, attribute_dim: int | None
    ) -> dict[str, keras.Model]:
        """G, D and the EMA G, or for a progressive run the models holding every stage's layers.

        The step trains ``self.generator`` and ``self.discriminator``: these same models, or
        the stage's ones (:meth:`use_stage_of`).
        """
        if self.growth is None:
            self.generator = build_generator(model_config, image_size, attribute_dim)
            self.discriminator = build_discriminator(model_config, image_size, attribute_dim)
            networks = {"generator": self.generator, "discriminator": self.discriminator}
            if self.config.ema_decay is not None:
                networks["ema_generator"] = build_generator(model_config, image_size, attribute_dim)
        else:

            def growing(build) -> Growing:
                return build(model_config, self.growth.resolutions, self.growth.fade, attribute_dim)

            self._growing = {
                "generator": growing(grow_generator),
                "discriminator": growing(grow_discriminator),
            }
            if self.config.ema_decay is not None:
                self._growing["ema_generator"] = growing(grow_generator)
            networks = {name: grown.everything for name, grown in self._growing.items()}
        self.ema_generator = networks.get("ema_generator")
        if self.ema_generator is not None:
            self.ema_generator.set_weights(networks["generator"].get_weights())
        return networks

    def use_stage_of(self, update: int) -> None:
        """Train (and sample) the models of the progressive stage that runs ``update``.

        A new stage traces the step anew: its models are other graphs.
        """
        if self.growth is None or self.growth.stage(update) == self.stage:
            return
        self.stage = self.growth.stage(update)
        self._phase_start = self.growth.phase_start(update)
        models = {name: grown.models[self.stage] for name, grown in self._growing.items()}
        self.generator = models["generator"]
        self.discriminator = models["discriminator"]
        self.ema_generator = models.get("ema_generator")
        self._fades = []
        if self.stage.fading:
            self._fades = [grown.fades[self.stage.resolution] for grown in self._growing.values()]
        self._refitted_at_step = None
        self._trace()

    def _trace(self) -> None:
        """New step functions, traced on their first call."""
        # The iterator cannot live inside an XLA cluster, so the step that XLA may compile
        # takes the batches already drawn and holds every strategy.run of the update.
        jit_compile = resolve_jit_compile(self.config).jit_compile
        self._update = tf.function(self._update_fn, jit_compile=jit_compile)
        self.train_step = tf.function(self._train_step)

    def begin_update(self, update: int) -> None:
        """Ready update ``update`` (from 1): its stage's models, and fresh Adam states when it
        opens a phase (ProGAN's reset: the grown block and the rest start their moments and
        bias correction together)."""
        self.use_stage_of(update)
        if self.growth is not None and self.growth.starts_phase(update):
            for optimizer in (self.g_optimizer, self.d_optimizer):
                _reset_adam(optimizer)

    def checkpointed(self) -> dict[str, object]:
        """Every weight of every stage, both optimizers and the step: what a checkpoint holds."""
        state = {
            "generator": self._networks["generator"],
            "discriminator": self._networks["discriminator"],
            "g_optimizer": self.g_optimizer,
            "d_optimizer": self.d_optimizer,
            "step": self.step,
        }
        if "ema_generator" in self._networks:
            state["ema_generator"] = self._networks["ema_generator"]
        return state

    def growth_metrics(self) -> dict[str, float]:
        """The resolution and α of the last update of a progressive run; none otherwise."""
        if self.growth is None:
            return {}
        step = int(self.step.numpy())
        return {"resolution": self.stage.resolution, "fade_alpha": self.growth.alpha(step)}

    # -- randomness ---------------------------------------------------------------------

    def _seed(self, purpose: int) -> tf.Tensor:
        draw = self.step * _DRAWS_PER_STEP + purpose
        return tf.stack([tf.constant(self.config.seed, tf.int64), draw])

    def _transform_seed(self, purpose: int) -> tf.Tensor:
        """Seeds of image transforms: negative draw numbers, a stream apart from the noise
        and attributes of every step."""
        return tf.stack([tf.constant(self.config.seed, tf.int64), -1 - self._seed(purpose)[1]])

    def _replica_rows(self) -> tuple[tf.Tensor, int]:
        """(first row, global batch): where this replica's images sit in the global batch."""
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return replica * self.replica_batch_size, self.config.batch_size

    def _augment(self, images: tf.Tensor, purpose: int) -> tf.Tensor:
        """DiffAugment of this replica's images; a no-op unless ``train.augment`` is set."""
        if not self.config.augment:
            return images
        rows = self._replica_rows()
        return augment(images, self.config.augment, self._transform_seed(purpose), rows)

    def _consistency_transform(self, images: tf.Tensor, draw: int) -> tf.Tensor:
        """T(x) of consistency regularisation, for draw ``draw`` of the step (purposes counted
        down from the top, clear of DiffAugment's, which count up)."""
        seed = self._transform_seed(_DRAWS_PER_STEP - 1 - draw)
        return consistency_transform(images, seed, self._replica_rows())

    def _replica_slice(self, values: tf.Tensor) -> tf.Tensor:
        """This replica's rows of a global-batch tensor."""
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        start = replica * self.replica_batch_size
        return values[start : start + self.replica_batch_size]

    def _noise(self, purpose: int) -> tf.Tensor:
        shape = (self.config.batch_size, self.latent_dim)
        return self._replica_slice(tf.random.stateless_normal(shape, self._seed(purpose)))

    def _fake_attributes(self, draw: int) -> tf.Tensor | None:
        """This replica's attribute vectors for the fake half of draw ``draw`` of the step."""
        if self.conditioning is None:
            return None
        seed = self._seed(_FIRST_ATTRIBUTE_PURPOSE - draw)
        codes = self.conditioning.draw(self.config.batch_size, seed)  # (global B, k)
        return self._replica_slice(self.conditioning.encode(codes))

    def _real(self, batch) -> tuple[tf.Tensor, tf.Tensor | None]:
        """Images and, for a conditional model, the one-hot attributes of their labels."""
        if self.conditioning is None:
            return self._at_stage_size(batch), None
        images, labels = batch
        attributes = self.conditioning.encode(self.conditioning.select(labels))
        return self._at_stage_size(images), attributes

    def _at_stage_size(self, images: tf.Tensor) -> tf.Tensor:
        """Real images as the progressive stage's D sees them: average-pooled to its
        resolution and, during a fade-in, blended as G's output is: (1 − α)·upsampled
        half-size image + α·the image (Karras et al.). Unchanged without progressive growing."""
        if self.stage is None:
            return images
        factor = self.image_size // self.stage.resolution
        if factor > 1:
            images = tf.nn.avg_pool2d(images, factor, factor, "VALID")
        if self.stage.fading:
            coarse = tf.nn.avg_pool2d(images, 2, 2, "VALID")
            coarse = tf.repeat(tf.repeat(coarse, 2, axis=1), 2, axis=2)
            images = coarse + self._alpha() * (images - coarse)
        return images

    def _alpha(self) -> tf.Tensor:
        """α of the update in flight (``self.step`` counts the updates done before it)."""
        done_in_phase = tf.cast(self.step - self._phase_start, tf.float32)
        return (done_in_phase + 1.0) / (self.growth.fade + 1)

    # -- the two networks, with their attributes when conditional -------------------------

    def _generate(self, z, attributes) -> tf.Tensor:
        return self.generator(model_inputs(z, attributes), training=True)

    def _discriminate(self, images, attributes, training: bool) -> tf.Tensor:
        return self.discriminator(model_inputs(images, attributes), training=training)

    # -- per-replica updates ------------------------------------------------------------

    def _logits(
        self, real_images, real_attributes, fake_images, fake_attributes, draw: int
    ) -> Logits:
        """D's logits on the real and the fake half (augmented with draw ``draw`` of the step)
        and, with consistency regularisation, on the real half flipped and shifted."""
        # In D, `training` only drives the spectral norms' power iteration (D has no
        # BatchNorm): the fake call refines u once and the real calls reuse it, so every
        # half sees the same σ. Separate calls rather than one on [real; fake] let G's
        # gradient run back through the fake half alone.
        fake_images = self._augment(fake_images, 2 * draw + 1)
        fake_logits = self._discriminate(fake_images, fake_attributes, training=True)
        real_images = self._augment(real_images, 2 * draw)
        real_logits = self._discriminate(real_images, real_attributes, training=False)
        transformed_logits = None
        if self.config.consistency_weight > 0:
            transformed = self._consistency_transform(real_images, draw)
            transformed_logits = self._discriminate(transformed, real_attributes, training=False)
        return Logits(real_logits, fake_logits, transformed_logits)

    def _adversarial_d_loss(self, logits: Logits) -> tf.Tensor:
        """L_D [+ λ_cr·‖D(x) − D(T(x))‖²]: the terms of D's loss that its logits give."""
        loss = self.losses.discriminator(logits.real, logits.fake)
        if logits.transformed is not None:
            consistency = consistency_loss(logits.real, logits.transformed)
            loss += self.config.consistency_weight * consistency
        return loss

    def _d_loss(
        self, real_images, real_attributes, fake_images, fake_attributes, alpha, draw: int
    ) -> tuple[tf.Tensor, Logits]:
        """L_D [+ λ_cr·CR] [+ λ·GP], and D's logits."""
        logits = self._logits(real_images, real_attributes, fake_images, fake_attributes, draw)
        loss = self._adversarial_d_loss(logits)
        if self.config.gp_weight > 0:
            # The interpolates carry the real attributes, as in StudioGAN's penalty.
            critic = functools.partial(self._discriminate, attributes=real_attributes)
            penalty = gradient_penalty(critic, real_images, fake_images, alpha, self.pack)
            loss += self.config.gp_weight * penalty
        return loss, logits

    def _scaled(self, optimizer, loss: tf.Tensor) -> tf.Tensor:
        """This replica's share of the global mean loss, times the float16 loss scale.

        Call it inside the tape: the gradient is taken of what it returns.
        """
        return optimizer.scale_loss(loss / self.strategy.num_replicas_in_sync)

    @staticmethod
    def _apply(optimizer, gradients: list, model: keras.Model) -> None:
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))

    def _d_update(self, real_images, real_attributes, z, fake_attributes, alpha, draw) -> dict:
        fake_images = self._generate(z, fake_attributes)  # outside the tape: no G backward
        with tf.GradientTape() as tape:
            d_loss, logits = self._d_loss(
                real_images, real_attributes, fake_images, fake_attributes, alpha, draw
            )
            d_scaled = self._scaled(self.d_optimizer, d_loss)
        d_variables = self.discriminator.trainable_variables
        self._apply(self.d_optimizer, tape.gradient(d_scaled, d_variables), self.discriminator)
        return self._means(d_loss=d_loss, **self._logit_terms(logits))

    def _joint_update(self, real_images, real_attributes, z, fake_attributes, alpha, draw) -> dict:
        """D and G updates from one forward pass; G's gradient sees D before its update."""
        gradients = self._shared_backward if self.shares_backward else self._two_backwards
        d_gradients, g_gradients, metrics = gradients(
            real_images, real_attributes, z, fake_attributes, alpha, draw
        )
        self._apply(self.d_optimizer, d_gradients, self.discriminator)
        self._apply(self.g_optimizer, g_gradients, self.generator)
        return metrics

    def _two_backwards(self, real_images, real_attributes, z, fake_attributes, alpha, draw):
        """D's and G's gradients from one tape each: two backward passes through D's fake half."""
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            fake_images = self._generate(z, fake_attributes)
            d_loss, logits = self._d_loss(
                real_images, real_attributes, fake_images, fake_attributes, alpha, draw
            )
            g_loss = self.losses.generator(logits.fake)
            extra = self._perceptual_terms(real_images, fake_images)
            d_scaled = self._scaled(self.d_optimizer, d_loss)
            g_scaled = self._scaled(self.g_optimizer, g_loss + self._weighted(extra))
        d_gradients = d_tape.gradient(d_scaled, self.discriminator.trainable_variables)
        g_gradients = g_tape.gradient(g_scaled, self.generator.trainable_variables)
        metrics = self._means(d_loss=d_loss, g_loss=g_loss, **self._logit_terms(logits), **extra)
        return d_gradients, g_gradients, metrics

    def _shared_backward(self, real_images, real_attributes, z, fake_attributes, alpha, draw):
        """D's and G's gradients from one backward pass through D.

        Each fake image's logit receives a cotangent u_D from L_D and u_G from L_G. D treats
        images independently (no BatchNorm; a packed D, each pack, whose images share their
        logit's ratio), and backpropagation is linear in the cotangent, so the gradient an
        image gets for G is its gradient under u_D times u_G / u_D. The
        pass sends u_D, which gives D's weight gradient, and rescales each image's gradient
        for G. Where u_D is 0 (hinge: D already rejects that fake by the margin), the pass
        sends u_G × 2⁻³², a relative change to D's gradient far below float32's rounding.
        The perceptual term depends on G only through the images: its image gradient is
        added to what reaches G.
        """
        del alpha  # no gradient penalty here (see shares_backward)
        with tf.GradientTape(persistent=True) as tape:
            fake_images = self._generate(z, fake_attributes)
            logits = self._logits(real_images, real_attributes, fake_images, fake_attributes, draw)
            extra = self._perceptual_terms(real_images, fake_images)
            perceptual_scaled = self._scaled(self.g_optimizer, self._weighted(extra))
        outputs = [logit for logit in logits if logit is not None]
        with tf.GradientTape(persistent=True) as loss_tape:
            loss_tape.watch(outputs)
            d_loss = self._adversarial_d_loss(logits)
            g_loss = self.losses.generator(logits.fake)
            d_scaled = self._scaled(self.d_optimizer, d_loss)
            g_scaled = self._scaled(self.g_optimizer, g_loss)
        u_real, u_fake, *u_transformed = loss_tape.gradient(d_scaled, outputs)
        u_generator = loss_tape.gradient(g_scaled, logits.fake)
        floor = _COTANGENT_FLOOR * u_generator
        sent = tf.where(tf.abs(u_fake) >= tf.abs(floor), u_fake, floor)
        *d_gradients, image_gradients = tape.gradient(
            outputs,
            [*self.discriminator.trainable_variables, fake_images],
            output_gradients=[u_real, sent, *u_transformed],
        )
        per_logit = tf.math.divide_no_nan(u_generator, sent)
        per_image = tf.reshape(tf.repeat(per_logit, self.pack, axis=0), (-1, 1, 1, 1))
        image_gradients *= tf.cast(per_image, image_gradients.dtype)
        if extra:
            image_gradients += tf.cast(
                tape.gradient(perceptual_scaled, fake_images), image_gradients.dtype
            )
        g_gradients = tape.gradient(
            fake_images, self.generator.trainable_variables, output_gradients=image_gradients
        )
        metrics = self._means(d_loss=d_loss, g_loss=g_loss, **self._logit_terms(logits), **extra)
        return d_gradients, g_gradients, metrics

    def _g_update(self, real_images, z: tf.Tensor, attributes: tf.Tensor | None) -> dict:
        with tf.GradientTape() as tape:
            fake_images = self._generate(z, attributes)
            augmented = self._augment(fake_images, 2 * self.config.n_critic + 1)
            fake_logits = self._discriminate(augmented, attributes, training=True)
            g_loss = self.losses.generator(fake_logits)
            extra = self._perceptual_terms(real_images, fake_images)
            g_scaled = self._scaled(self.g_optimizer, g_loss + self._weighted(extra))
        g_variables = self.generator.trainable_variables
        self._apply(self.g_optimizer, tape.gradient(g_scaled, g_variables), self.generator)
        return self._means(g_loss=g_loss, **extra)

    # -- the multi-scale D's and the perceptual loss's terms ------------------------------

    def _logit_terms(self, logits: Logits) -> dict[str, tf.Tensor]:
        """What the logits tell about D: ``d_real``, ``d_fake``, L_D of each scale's D
        (``d_loss_scale<factor>``, for a multi-scale D) and ‖D(x) − D(T(x))‖²
        (``consistency_loss``, with consistency regularisation)."""
        terms = {"d_real": logits.real, "d_fake": logits.fake}
        if len(self.scales) > 1:
            losses = per_scale_losses(self.losses.discriminator, logits.real, logits.fake)
            terms |= {f"d_loss_scale{f}": loss for f, loss in zip(self.scales, losses, strict=True)}
        if logits.transformed is not None:
            terms["consistency_loss"] = consistency_loss(logits.real, logits.transformed)
        return terms

    def _perceptual_terms(self, real_images, fake_images) -> dict[str, tf.Tensor]:
        """``{"perceptual_loss": P}`` of this step's global batch; empty when it is off.

        Each replica's batch means are summed over the replicas (an all-reduce whose
        gradient is an all-reduce too), so P is the global batch's on every replica.
        """
        if self.perceptual is None:
            return {}
        context = tf.distribute.get_replica_context()
        replicas = self.strategy.num_replicas_in_sync

        def global_means(images) -> list[tf.Tensor]:
            features = self.perceptual(vgg_input(images), training=False)
            means = [tf.reduce_mean(tf.cast(f, tf.float32), axis=0) / replicas for f in features]
            return context.all_reduce(SUM, means) if replicas > 1 else means

        real_means = [tf.stop_gradient(m) for m in global_means(real_images)]
        return {"perceptual_loss": perceptual_loss(real_means, global_means(fake_images))}

    def _weighted(self, extra: dict[str, tf.Tensor]) -> tf.Tensor | float:
        """λ·P, what the perceptual term adds to G's loss (0 when it is off)."""
        if not extra:
            return 0.0
        return self.config.perceptual_weight * extra["perceptual_loss"]

    def _means(self, **values: tf.Tensor) -> dict[str, tf.Tensor]:
        """This replica's share of each global mean (summed over replicas afterwards)."""
        replicas = self.strategy.num_replicas_in_sync
        return {name: tf.reduce_mean(value) / replicas for name, value in values.items()}

    def _replica_d_step(self, real_batch, critic: int, joint: bool) -> dict:
        real_images, real_attributes = self._real(real_batch)
        z = self._noise(2 * critic)
        # One α per logit: the images of a pack are mixed alike.
        alpha_shape = (self.config.batch_size // self.pack, 1, 1, 1)
        alpha = tf.random.stateless_uniform(alpha_shape, self._seed(2 * critic + 1))
        alpha = self._replica_slice(tf.repeat(alpha, self.pack, axis=0))
        update = self._joint_update if joint else self._d_update
        fake_attributes = self._fake_attributes(critic)
        return update(real_images, real_attributes, z, fake_attributes, alpha, critic)

    def _replica_g_step(self, real_batch) -> dict:
        real_images, _ = self._real(real_batch)  # only the perceptual loss reads them
        z = self._noise(_DRAWS_PER_STEP - 1)
        return self._g_update(real_images, z, self._fake_attributes(self.config.n_critic))

    # -- one generator update -----------------------------------------------------------

    def _train_step(self, iterator) -> dict[str, tf.Tensor]:
        """n_critic D updates and one G update; returns global means of the last updates."""
        return self._update([next(iterator) for _ in range(self.config.n_critic)])

    def _update_fn(self, real_batches: list) -> dict[str, tf.Tensor]:
        if self.stage is not None and self.stage.fading:
            alpha = self._alpha()
            for fade in self._fades:
                fade.alpha.assign(alpha)
        simultaneous = self.config.update == "simultaneous"
        for critic, real_batch in enumerate(real_batches):
            joint = simultaneous and critic == len(real_batches) - 1
            metrics = self.strategy.run(self._replica_d_step, args=(real_batch, critic, joint))
        if not simultaneous:
            metrics.update(self.strategy.run(self._replica_g_step, args=(real_batches[-1],)))
        self.step.assign_add(1)
        if self.ema_generator is not None:
            self._update_ema()
        return {
            name: self.strategy.reduce(SUM, value, axis=None) for name, value in metrics.items()
        }

    def _update_ema(self) -> None:
        """ema ← decay·ema + (1 − decay)·w for trainable weights; a plain copy of the rest."""
        started = self.step > self.config.ema_start
        decay = tf.where(started, self.config.ema_decay, 0.0)
        averages, weights = self._networks["ema_generator"], self._networks["generator"]
        for average, weight in zip(averages.weights, weights.weights, strict=True):
            if weight.trainable:
                average.assign(decay * average + (1.0 - decay) * weight)
            else:
                average.assign(weight)

    # -- introspection for logging ------------------------------------------------------

    def attention_gammas(self) -> dict[str, float]:
        """γ of every self-attention layer, keyed ``gamma_g_attention_16``, …"""
        return {
            f"gamma_{prefix}_{layer.name}": float(layer.gamma.numpy())
            for prefix, model in (("g", self.generator), ("d", self.discriminator))
            for layer in model.layers
            if isinstance(layer, SelfAttention)
        }

    def spectral_norms(self) -> dict[str, float]:
        """σ of every spectrally normalized layer of D (and G), keyed ``sigma_d_sn_down1``, …"""
        return {
            f"sigma_{prefix}_{layer.name}": float(layer.sigma().numpy())
            for prefix, model in (("g", self.generator), ("d", self.discriminator))
            for layer in model.layers
            if isinstance(layer, SpectralNormalization)
        }

    def sampling_generator(self) -> keras.Model:
        """The generator to sample from: the EMA one when training keeps it.

        The EMA generator's BatchNorm statistics are refitted to its weights of this step
        first (once per step), from the same standing faces each time.
        """
        if self.ema_generator is None:
            return self.generator
        step = int(self.step.numpy())
        if self._refitted_at_step != step:
            refit_batch_norm(
                self.ema_generator,
                standing_inputs(
                    self.latent_dim,
                    self.config.seed,
                    self.config.batch_size,
                    self.config.standing_samples,
                    self.conditioning,
                ),
            )
            self._refitted_at_step = step
        return self.ema_generator
