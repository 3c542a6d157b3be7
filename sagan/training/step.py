"""The SAGAN trainer: the networks, their optimizers, the EMA generator and the train step,
written against ``tf.distribute``.

One call of :meth:`GANTrainer.train_step` is one generator update (the unit of
``train.steps``) with ``train.n_critic`` critic steps, each on a fresh real batch:

    D: L_D(D(x), D(G(z)))  [+ λ·GP]  [+ γ/2·R1]  → Adam(d_lr)      (n_critic times)
    G: L_G(D(G(z)))                               → Adam(g_lr)

``train.update: simultaneous`` (the default, as in TensorFlow's GAN tutorials) takes the
last D update and the G update from one forward pass: G's gradient sees D as it was before
that D update, and one backward pass through D serves both
(:func:`~sagan.training.updates.shared_backward_update`). ``alternating`` (the authors'
PyTorch code) runs G's update on fresh noise through the freshly updated D. Each path is one
function of :mod:`sagan.training.updates`, picked here once.

R1 (``train.r1_weight`` γ) is lazy as in StyleGAN2: every ``train.r1_every``-th update (k)
adds k·γ/2·R1 to each critic step's L_D, so that on average it weighs γ/2. The updates that
take it run a step traced with it, the others one traced without (and keep the shared
backward pass).

Distribution: ``train.batch_size`` is the global batch, split evenly over the replicas. The
generator's BatchNorm is synchronized: its statistics cover the global batch, so N replicas
compute what one device would. Randomness: every draw is named and keyed by the step
(:mod:`sagan.training.draws`), so a resumed run draws what an uninterrupted one would.

Against dropped modes: ``train.consistency_weight`` (Zhang et al. 2020) holds D's logits on
a real image and on its random mirror image and shift together; ``model.minibatch_stddev``
and ``model.pack`` are D layers (:mod:`sagan.model.layers`): the trainer only checks that
packs and groups stay within each replica's slice.

Progressive growing (``train.progressive``, :mod:`sagan.model.progressive`): the step trains
the models of the stage that runs the update (:meth:`GANTrainer.begin_update`; a new stage
is traced anew), on real batches brought to the stage's resolution
(:func:`~sagan.training.growth.at_stage_size`). Both Adams hold slots for every stage's
variables from the start, and restart at the first update of each phase after the first.

Conditional models (a :class:`~sagan.model.conditioning.Conditioning` given): batches are
``(images, labels)``; D sees the real half with its own attributes, and G and D the fake half
with attribute rows drawn from the training split's combinations at their frequencies.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import keras
import tensorflow as tf

from sagan.config import Config, ModelConfig, TrainConfig
from sagan.model.batchnorm import refit_batch_norm, standing_inputs
from sagan.model.conditioning import Conditioning
from sagan.model.networks import build_discriminator, build_generator
from sagan.model.progressive import Growing, grow_discriminator, grow_generator
from sagan.training.draws import MAX_CONDITIONAL_CRITICS, Draws
from sagan.training.ema import update_ema
from sagan.training.growth import at_stage_size, fade_alpha
from sagan.training.losses import get_losses
from sagan.training.perceptual import feature_network, vgg19_weights_file
from sagan.training.settings import TrainingSettings
from sagan.training.updates import SUM, Half, Parts, Perceptual, pick_updates

logger = logging.getLogger(__name__)


def _adam(learning_rate: float, config: TrainConfig, precision: str) -> keras.optimizers.Optimizer:
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=config.beta_1, beta_2=config.beta_2)
    if precision == "mixed_float16":
        # float16 gradients underflow without a loss scale; bfloat16 has float32's range.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def linear_decay(update: int, budget: int) -> float:
    """The share of the base learning rate that update ``update`` (from 1) of ``budget`` takes
    under ``train.lr_schedule: linear``: 1 − (update − 1) / budget, so the first update takes
    it whole and the last 1 / budget (Miyato et al.'s SNGAN code, mimicry)."""
    return 1.0 - (update - 1) / budget


def _reset_adam(optimizer: keras.optimizers.Optimizer) -> None:
    """Zero Adam's moments and iteration count (the float16 loss scale keeps its state)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    for variable in inner.variables:
        if variable.name != "learning_rate":
            variable.assign(tf.zeros_like(variable))


def check_batch_layout(
    config: Config, replicas: int, strategy_name: str, conditional: bool
) -> None:
    """ValueError unless the global batch splits into whole replica slices, packs and groups,
    and the critic steps' random draws stay apart."""
    model, train = config.model, config.train
    if train.batch_size % replicas:
        raise ValueError(
            f"train.batch_size ({train.batch_size}) must be divisible by the "
            f"{replicas} replicas of the {strategy_name}"
        )
    replica_batch = train.batch_size // replicas
    group = model.minibatch_stddev or 1
    if replica_batch % (model.pack * group):
        raise ValueError(
            f"model.pack ({model.pack}) × model.minibatch_stddev ({group}) must divide "
            f"each replica's batch ({replica_batch} of train.batch_size {train.batch_size}): "
            "a pack or a group must not straddle two replicas"
        )
    limited = {
        "a conditional model": conditional,
        "train.consistency_weight": train.consistency_weight > 0,
    }
    for feature in (name for name, on in limited.items() if on):
        if train.n_critic > MAX_CONDITIONAL_CRITICS:
            raise ValueError(
                f"train.n_critic is {train.n_critic}; {feature} allows at most "
                f"{MAX_CONDITIONAL_CRITICS} (each step's random draws must not overlap)"
            )


class GANTrainer:
    """Generator, discriminator, their optimizers, the optional EMA generator and the step."""

    def __init__(
        self,
        settings: TrainingSettings,
        conditioning: Conditioning | None = None,
        shared_backward: bool = True,
    ):
        """``shared_backward=False`` takes two backward passes even where one would do (for
        benchmarks: both give the same gradients)."""
        self.settings = settings
        self.train_config = config = settings.config.train
        model_config = settings.config.model
        self.conditioning = conditioning
        self.strategy = settings.strategy or tf.distribute.get_strategy()
        replicas = self.strategy.num_replicas_in_sync
        strategy_name = type(self.strategy).__name__
        check_batch_layout(settings.config, replicas, strategy_name, conditioning is not None)
        self.replica_batch_size = config.batch_size // replicas
        attribute_dim = None if conditioning is None else conditioning.dim
        self.latent_dim = model_config.latent_dim
        self.image_size = image_size = settings.image_size
        self.growth = settings.growth
        self.precision = settings.precision.policy
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
        self.parts = Parts(  # with the stage's networks in each trace
            generator=self._networks["generator"],
            discriminator=self._networks["discriminator"],
            g_optimizer=self.g_optimizer,
            d_optimizer=self.d_optimizer,
            loss=get_losses(config.loss),
            replicas=replicas,
            pack=model_config.pack,
            scales=model_config.discriminator_scales,
            augment=config.augment,
            consistency=config.consistency_weight,
            penalty=config.gp_weight,
            perceptual=self.perceptual and Perceptual(self.perceptual, config.perceptual_weight),
        )
        # The gradient penalty makes L_D depend on the fake images outside their logits
        # (R1 too, on the real ones: only its updates take two passes, below),
        # float16 would flush the floor's tiny image gradients to zero, a multi-scale D
        # gives each image one logit per scale, whose cotangents no single ratio maps, and
        # the minibatch stddev makes each logit depend on the other images of its group.
        self.shares_backward = (
            shared_backward
            and config.gp_weight == 0
            and self.precision != "mixed_float16"
            and len(model_config.discriminator_scales) == 1
            and model_config.minibatch_stddev is None
        )
        self.stage, self._fades = None, []
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
            if self.train_config.ema_decay is not None:
                networks["ema_generator"] = build_generator(model_config, image_size, attribute_dim)
        else:

            def growing(build) -> Growing:
                return build(model_config, self.growth.resolutions, self.growth.fade, attribute_dim)

            self._growing = {
                "generator": growing(grow_generator),
                "discriminator": growing(grow_discriminator),
            }
            if self.train_config.ema_decay is not None:
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
        """New step functions for the stage's networks, traced on their first call: one
        without R1 and, when it is on, one with it."""
        self.parts = dataclasses.replace(
            self.parts, generator=self.generator, discriminator=self.discriminator
        )
        # The functions XLA may compile (one per R1 setting), and the steps around them.
        self._updates = {False: self._update_function(self.parts, self.shares_backward)}
        config = self.train_config
        if config.r1_weight > 0:
            with_r1 = dataclasses.replace(self.parts, r1=config.r1_weight / 2 * config.r1_every)
            self._updates[True] = self._update_function(with_r1, shares_backward=False)
        self._steps = {r1: self._step_around(update) for r1, update in self._updates.items()}

    def _update_function(self, parts: Parts, shares_backward: bool):
        """One generator update with ``parts``, as a function of its real batches."""
        critic_updates, generator_update = pick_updates(
            self.train_config.update == "simultaneous",
            shares_backward,
            self.train_config.n_critic,
        )
        # The iterator cannot live inside an XLA cluster, so the step that XLA may compile
        # takes the batches already drawn and holds every strategy.run of the update.
        # autograph=False: the step branches and loops on Python values only, and rewriting
        # the source of every function it calls took about half of its first trace.
        return tf.function(
            functools.partial(self._update_fn, parts, critic_updates, generator_update),
            jit_compile=self.settings.xla.jit_compile,
            autograph=False,
        )

    def _step_around(self, update):
        """``update`` on the next n_critic batches of the data iterator."""

        def step(iterator) -> dict[str, tf.Tensor]:
            return update([next(iterator) for _ in range(self.train_config.n_critic)])

        return tf.function(step, autograph=False)

    def takes_r1(self, update: int) -> bool:
        """Whether update ``update`` (from 1) adds R1 to L_D: every ``train.r1_every``-th."""
        return self.train_config.r1_weight > 0 and update % self.train_config.r1_every == 0

    def begin_update(self, update: int, budget: int) -> None:
        """Ready update ``update`` (from 1) of ``budget``: its stage's models, fresh Adam
        states when it opens a phase (ProGAN's reset: the grown block and the rest start
        their moments and bias correction together), and its learning rates."""
        self.use_stage_of(update)
        if self.growth is not None and self.growth.starts_phase(update):
            for optimizer in (self.g_optimizer, self.d_optimizer):
                _reset_adam(optimizer)
        if self.train_config.lr_schedule == "linear":
            remaining = linear_decay(update, budget)
            self.g_optimizer.learning_rate = self.train_config.g_lr * remaining
            self.d_optimizer.learning_rate = self.train_config.d_lr * remaining

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

    # -- one generator update -----------------------------------------------------------

    def train_step(self, iterator) -> dict[str, tf.Tensor]:
        """The next generator update: n_critic critic steps (and G's own update) on batches
        of ``iterator``; returns the global means of the last."""
        update = int(self.step.numpy()) + 1
        return self._steps[self.takes_r1(update)](iterator)

    def _update_fn(
        self, parts: Parts, critic_updates: list, generator_update, real_batches: list
    ) -> dict[str, tf.Tensor]:
        for fade in self._fades:  # a progressive run's fade-in layers: this update's α
            fade.alpha.assign(self._alpha())
        metrics = {}
        critic_steps = zip(critic_updates, real_batches, strict=True)
        for critic, (update, batch) in enumerate(critic_steps):
            step = functools.partial(self._replica_step, parts, update, critic)
            metrics.update(self.strategy.run(step, args=(batch,)))
        if generator_update is not None:  # fresh noise, the last real batch
            step = functools.partial(self._replica_step, parts, generator_update, len(real_batches))
            metrics.update(self.strategy.run(step, args=(real_batches[-1],)))
        self.step.assign_add(1)
        if self.ema_generator is not None:
            update_ema(
                self._networks["ema_generator"],
                self._networks["generator"],
                self.step,
                self.train_config.ema_start,
                self.train_config.ema_decay,
            )
        return {
            name: self.strategy.reduce(SUM, value, axis=None) for name, value in metrics.items()
        }

    def _replica_step(self, parts: Parts, update, critic: int, batch) -> dict[str, tf.Tensor]:
        """Critic step ``critic`` (or G's own update, after the last) on this replica."""
        draws = self._draws()
        if critic < self.train_config.n_critic:
            noise = draws.noise(critic, self.latent_dim)
        else:
            noise = draws.generator_noise(self.latent_dim)
        fake = Half(noise, draws.attributes(critic, self.conditioning))
        return update(parts, self._real(batch), fake, draws, critic)

    def _draws(self) -> Draws:
        return Draws(
            self.train_config.seed, self.step, self.train_config.batch_size, self.replica_batch_size
        )

    def _real(self, batch) -> Half:
        """Images at the stage's size and, for a conditional model, their labels' one-hots."""
        images, attributes = batch, None
        if self.conditioning is not None:
            images, labels = batch
            attributes = self.conditioning.encode(self.conditioning.select(labels))
        if self.stage is not None:
            images = at_stage_size(images, self.image_size, self.stage, self._alpha())
        return Half(images, attributes)

    def _alpha(self) -> tf.Tensor:
        return fade_alpha(self.step, self._phase_start, self.growth.fade)

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
                    self.train_config.seed,
                    self.train_config.batch_size,
                    self.train_config.standing_samples,
                    self.conditioning,
                ),
            )
            self._refitted_at_step = step
        return self.ema_generator
