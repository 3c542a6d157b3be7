"""Training speed of the default 64×64 SAGAN: images/s and model FLOPs utilisation (MFU).

Side by side in one process, on the same random batches:
- ``straightforward``: a plain ``tf.function`` step with separate D and G updates that each
  recompute G(z), D(real) and D(fake) as separate calls, no XLA;
- ``sagan``: :class:`sagan.training.step.GANTrainer` with its defaults (the simultaneous update: one
  forward and one backward pass through D serve the D and the G update), then with two
  backward passes (one gradient tape per network, to show what sharing the backward pass
  buys), with ``jit_compile``, with the alternating update, and in ``mixed_bfloat16`` (also
  with ``n_critic: 2``: two D updates per G update, with the two-scale discriminator
  ``model.discriminator_scales: [1, 2]``, with the VGG19 perceptual loss on its default
  layers, whose weights here are a random stand-in: the ImageNet file cannot be fetched
  offline, and the arithmetic is the same, and with each lever against dropped modes:
  ``train.consistency_weight: 10``, ``model.minibatch_stddev: 4``, ``model.pack: 2``), and
  in each stage of progressive growing
  (``train.progressive: [16, 32, 64]``: at 16 px, fading to 32, at 32, fading to 64, at 64);
  and with the residual networks (``model.architecture: resnet``, SN in G as the paper) at
  widths 64 (the paper's), 32 and 16, in float32 and ``mixed_bfloat16``.

``--only NAME …`` times just those of our variants (with the straightforward baseline).
Each variant's trainable and frozen parameter counts are printed with its figures.

The "effective MFU" counts the FLOPs of the straightforward step for every variant (the
work one training step does, however it is computed) against the measured peak, so it
compares directly across variants; it exceeds 100% where a variant skips work (the shared
forward pass) or runs faster arithmetic than float32 (bfloat16 on AMX).

FLOPs per step come from TensorFlow's graph profiler on one forward pass of each network
(backward ≈ 2× forward). The peak is measured, not looked up: a large float32 matmul in the
same process (the CPU's nominal 2.1 GHz × AVX2 FMA width understates what its AVX-512 units
and turbo clock deliver: the straightforward step alone measures above that). Usage:

    python -m benchmarks.train_step [--batch 64] [--steps 2] [--rounds 20] [--strategy mirrored]
                                    [--image-size 128]

``--strategy`` runs our variants under that ``tf.distribute`` strategy (``mirrored``: every
visible GPU); the straightforward baseline stays on one device.

The variants take turns: each round times every variant for ``--steps`` steps, and the
figures are medians over the rounds (ratios are taken round by round), so a burst of load
from elsewhere on a shared machine hits one round of every variant rather than the whole of
one. Short turns keep the variants of one round close in time.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sagan.config import Config, DataConfig, ModelConfig, TrainConfig
from sagan.model.networks import build_discriminator, build_generator
from sagan.training.growth import GrowthSchedule
from sagan.training.losses import hinge_d_loss, hinge_g_loss
from sagan.training.settings import make_strategy, resolve_settings
from sagan.training.step import GANTrainer


def forward_flops(model: keras.Model, input_shape: tuple[int, ...]) -> float:
    """FLOPs of one forward pass on a batch of one, counted by the graph profiler."""
    function = tf.function(lambda x: model(x, training=True))
    graph = function.get_concrete_function(tf.TensorSpec((1, *input_shape))).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def matmul_peak(size: int = 4096, repeats: int = 10) -> float:
    """FLOP/s of a large float32 matmul: the practical peak of this CPU, turbo included."""
    a = tf.random.normal((size, size))
    matmul = tf.function(lambda x: tf.matmul(x, x))
    matmul(a).numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        result = matmul(a)
    result.numpy()
    return repeats * 2 * size**3 / (time.perf_counter() - started)


def step_flops(g_flops: float, d_flops: float, batch: int) -> float:
    """One D update (G fwd, D fwd+bwd on 2B) and one G update (G fwd+bwd, D fwd+bwd on B)."""
    d_update = batch * (g_flops + 3 * 2 * d_flops)
    g_update = batch * (3 * g_flops + 3 * d_flops)
    return d_update + g_update


def straightforward_step(config: ModelConfig, batch: int, image_size: int = 64):
    """The baseline: every network call separate, G(z) recomputed under each tape."""
    generator = build_generator(config, image_size)
    discriminator = build_discriminator(config, image_size)
    g_optimizer = keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9)
    d_optimizer = keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9)

    @tf.function
    def step(real_images):
        z = tf.random.normal((batch, config.latent_dim))
        with tf.GradientTape() as tape:
            fake_images = generator(z, training=True)
            real_logits = discriminator(real_images, training=True)
            fake_logits = discriminator(fake_images, training=True)
            d_loss = hinge_d_loss(real_logits, fake_logits)
        grads = tape.gradient(d_loss, discriminator.trainable_variables)
        d_optimizer.apply_gradients(zip(grads, discriminator.trainable_variables, strict=True))
        z = tf.random.normal((batch, config.latent_dim))
        with tf.GradientTape() as tape:
            g_loss = hinge_g_loss(discriminator(generator(z, training=True), training=True))
        grads = tape.gradient(g_loss, generator.trainable_variables)
        g_optimizer.apply_gradients(zip(grads, generator.trainable_variables, strict=True))
        return d_loss, g_loss

    return lambda iterator: step(next(iterator))


def images_per_second(step, iterator, batch: int, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        outputs = step(iterator)
    tf.nest.map_structure(lambda t: t.numpy(), outputs)  # wait for the last step
    return steps * batch / (time.perf_counter() - started)


def random_dataset(batch: int, image_size: int = 64) -> tf.data.Dataset:
    """Endless batches of uniform random images in [-1, 1]."""
    pixels = np.random.default_rng(0).uniform(-1, 1, (batch * 4, image_size, image_size, 3))
    dataset = tf.data.Dataset.from_tensor_slices(pixels.astype("float32"))
    return dataset.repeat().batch(batch, drop_remainder=True).prefetch(2)


def random_batches(batch: int, image_size: int = 64):
    """An endless iterator over :func:`random_dataset`."""
    return iter(random_dataset(batch, image_size))


def take_turns(variants: dict, iterator, batch: int, rounds: int, steps: int) -> dict:
    """Warm every step up, then time each for ``steps`` steps per round: images/s by round."""
    for step in variants.values():  # trace, compile and warm up
        images_per_second(step, iterator, batch, 3)
    rates = {name: [] for name in variants}
    for _ in range(rounds):
        for name, step in variants.items():
            rates[name].append(images_per_second(step, iterator, batch, steps))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--strategy", default="default", help="train.strategy for our variants")
    parser.add_argument("--only", nargs="+", help="our variants to time (default: all)")
    parser.add_argument("--image-size", type=int, default=64, help="data.image_size of all")
    args = parser.parse_args()
    strategy = make_strategy(args.strategy)

    # The paper's D (one image at a time); params.yaml's default packs two (the pack=2 lines)
    model, size = ModelConfig(pack=1), args.image_size
    g_flops = forward_flops(build_generator(model, size), (model.latent_dim,))
    d_flops = forward_flops(build_discriminator(model, size), (size, size, 3))
    flops = step_flops(g_flops, d_flops, args.batch)
    peak = matmul_peak()
    print(f"G forward {g_flops / 1e9:.3f} GFLOP/image, D forward {d_flops / 1e9:.3f} GFLOP/image")
    print(f"one train step at batch {args.batch}: {flops / 1e9:.1f} GFLOP")
    print(f"peak (a 4096² float32 matmul on {os.cpu_count()} cores): {peak / 1e9:.0f} GFLOP/s")

    iterator = random_batches(args.batch, size)
    ours = iter(strategy.experimental_distribute_dataset(random_dataset(args.batch, size)))
    print(f"our variants: {type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s)")
    variants = {"straightforward": straightforward_step(model, args.batch, size)}
    bf16 = {"mixed_precision": "mixed_bfloat16"}
    stand_in = Path(tempfile.mkdtemp()) / "vgg19_stand_in.weights.h5"
    keras.applications.VGG19(include_top=False, weights=None).save_weights(stand_in)
    ours_only = {
        "sagan": {},
        "sagan two backward passes": {},
        "sagan jit_compile": {"jit_compile": True},
        "sagan update=alternating": {"update": "alternating"},
        "sagan mixed_bfloat16": bf16,
        "sagan mixed_bfloat16 jit_compile": {**bf16, "jit_compile": True},
        # the recipe study's n_critic lever: its updates per minute against the line above
        "sagan mixed_bfloat16 n_critic=2": {**bf16, "n_critic": 2},
        # issue 16's extensions, against the same line
        "sagan mixed_bfloat16 scales=[1,2]": {**bf16, "model": {"discriminator_scales": (1, 2)}},
        "sagan mixed_bfloat16 perceptual": {
            **bf16,
            "perceptual_weight": 1.0,
            "perceptual_weights": str(stand_in),
        },
    }
    # issue 30's levers against dropped modes, against "sagan mixed_bfloat16"
    levers = {
        "consistency_weight=10": {"consistency_weight": 10.0},
        "minibatch_stddev=4": {"model": {"minibatch_stddev": 4}},
        "pack=2": {"model": {"pack": 2}},
    }
    for name, lever in levers.items():
        ours_only[f"sagan mixed_bfloat16 {name}"] = {**bf16, **lever}
    # issue 31: XLA on the default recipe (packing), against the line above
    ours_only["sagan mixed_bfloat16 pack=2 jit_compile"] = {
        **bf16,
        **levers["pack=2"],
        "jit_compile": True,
    }
    # issue 17: each stage of progressive growing, at an update inside it
    growth = GrowthSchedule((16, 32, 64), (400, 400), 200)
    for update in (1, 401, 601, 801, 1001) if size == 64 else ():
        stage = growth.stage(update)
        ours_only[f"sagan mixed_bfloat16 progressive {stage.name}"] = {
            **bf16,
            "progressive": growth.resolutions,
            "progressive_steps": growth.phase_steps,
            "progressive_fade": growth.fade,
            "at_update": update,
        }
    # issue 18: the residual networks (SN in G too, as the paper), at the paper's widths and
    # narrower, against "sagan" (float32) and "sagan mixed_bfloat16"
    for width in (64, 32, 16):
        resnet = {"architecture": "resnet", "g_spectral_norm": True}
        resnet |= {"g_width": width, "d_width": width}
        ours_only[f"sagan resnet width={width}"] = {"model": resnet}
        ours_only[f"sagan mixed_bfloat16 resnet width={width}"] = {**bf16, "model": resnet}
    for name, options in ours_only.items():
        if args.only and name not in args.only:
            continue
        # float32 without XLA unless the variant says otherwise (params.yaml's defaults are
        # auto: bfloat16 and no XLA on a CPU with bfloat16 units, float32 with XLA elsewhere)
        options = {"mixed_precision": "none", "jit_compile": False, **options}
        variant_model = dataclasses.replace(model, **options.pop("model", {}))
        update = options.pop("at_update", 1)
        train = TrainConfig(batch_size=args.batch, **options)
        config = Config(data=DataConfig(image_size=size), model=variant_model, train=train)
        shared = name != "sagan two backward passes"
        settings = resolve_settings(config, strategy)
        trainer = GANTrainer(settings, shared_backward=shared)
        trainer.step.assign(update - 1)
        trainer.use_stage_of(update)
        variants[name] = lambda _, step=trainer.train_step: step(ours)
        frozen = trainer.perceptual.count_params() if trainer.perceptual else 0
        print(
            f"{name}: G {trainer.generator.count_params():,} and D "
            f"{trainer.discriminator.count_params():,} parameters, {frozen:,} frozen (VGG19)"
        )
    rounds = take_turns(variants, iterator, args.batch, args.rounds, args.steps)
    baseline = np.array(rounds["straightforward"])
    print(
        f"medians over {args.rounds} rounds of {args.steps} steps; ratios per round, then their "
        "median and middle half"
    )
    for name, rates in rounds.items():
        rate = np.median(rates)
        low, ratio, high = np.percentile(np.array(rates) / baseline, [25, 50, 75])
        mfu = rate / args.batch * flops / peak
        print(
            f"{name:28s} {rate:7.1f} images/s  {ratio:4.2f}x ({low:.2f}–{high:.2f})  "
            f"effective MFU {mfu:6.1%}"
        )


if __name__ == "__main__":
    main()
