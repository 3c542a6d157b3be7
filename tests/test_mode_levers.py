"""The levers against dropped modes: the minibatch standard deviation and packing (D layers)
and consistency regularisation (a term of D's loss); every case of the last test takes R1
as well. Their shared backward pass, exact resume
and multi-replica runs are tested with the other options in test_training."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan.model.layers import MinibatchStddev, Pack
from sagan.model.networks import build_discriminator
from sagan.model.resnet import build_discriminator as build_resnet_discriminator
from sagan.training.augment import consistency_transform, flip
from sagan.training.draws import MAX_CONDITIONAL_CRITICS
from sagan.training.losses import consistency_loss, gradient_penalty
from sagan.training.settings import resolve_settings
from sagan.training.step import GANTrainer
from tests.helpers import IMAGE_SIZE, tiny_config, tiny_model, train_tiny


def test_minibatch_stddev_appends_each_groups_mean_spread():
    x = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
    x[4:] *= 3.0  # the second group spreads three times as far
    out = MinibatchStddev(4)(x).numpy()
    np.testing.assert_array_equal(out[..., :3], x)
    for rows in (slice(0, 4), slice(4, 8)):  # consecutive images share a group
        expected = np.sqrt(x[rows].var(axis=0) + 1e-8).mean()
        np.testing.assert_allclose(out[rows, ..., 3], expected, rtol=1e-5)
    assert out[4, 0, 0, 3] > 2.9 * out[0, 0, 0, 3]


def test_identical_images_spread_nearly_zero_and_a_small_batch_is_one_group():
    same = np.ones((3, 2, 2, 1), "float32")
    np.testing.assert_allclose(MinibatchStddev(4)(same).numpy()[..., 1], 1e-4, rtol=1e-3)


def test_pack_lays_consecutive_images_side_by_side_along_the_channels():
    x = np.arange(4 * 2 * 2 * 3, dtype="float32").reshape(4, 2, 2, 3)
    out = Pack(2)(x).numpy()
    assert out.shape == (2, 2, 2, 6)
    for pack in range(2):
        np.testing.assert_array_equal(out[pack, ..., :3], x[2 * pack])
        np.testing.assert_array_equal(out[pack, ..., 3:], x[2 * pack + 1])


@pytest.mark.parametrize(
    "layer, message",
    [
        (MinibatchStddev(4), "a batch of 6 images does not split into groups of 4"),
        (Pack(4), "a batch of 6 images does not split into packs of 4"),
    ],
)
def test_a_batch_that_does_not_split_is_refused(layer, message):
    with pytest.raises(ValueError, match=message):
        layer(np.zeros((6, 2, 2, 1), "float32"))


@pytest.mark.parametrize("architecture", ["reference", "resnet"])
def test_both_discriminators_pack_take_the_spread_at_their_last_map_and_save(
    tmp_path, architecture
):
    model = tiny_model(minibatch_stddev=2, pack=2, architecture=architecture)
    build = build_resnet_discriminator if architecture == "resnet" else build_discriminator
    discriminator = build(model, IMAGE_SIZE)
    base = 4 if architecture == "resnet" else 8
    assert discriminator.get_layer("minibatch_stddev").output.shape[1:3] == (base, base)
    images = np.random.default_rng(1).uniform(-1, 1, (8, IMAGE_SIZE, IMAGE_SIZE, 3))
    logits = discriminator(images).numpy()
    assert logits.shape == (4, 1)  # one logit per pack of 2
    path = tmp_path / "discriminator.keras"
    discriminator.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path)(images).numpy(), logits, rtol=1e-5)


def test_a_replica_batch_must_hold_whole_packs_and_groups():
    class FourReplicas:
        num_replicas_in_sync = 4

    config = tiny_config()  # a batch of 8: 2 images per replica
    with pytest.raises(ValueError, match=r"model.pack \(2\) × model.minibatch_stddev \(2\)"):
        levers = dataclasses.replace(config, model=tiny_model(pack=2, minibatch_stddev=2))
        GANTrainer(resolve_settings(levers, FourReplicas()))


def test_the_gradient_penalty_of_a_packed_d_takes_the_norm_over_the_pack():
    """D(pack) = ⟨w, pack⟩ has the gradient w with respect to the pack: norm ‖w‖."""
    rng = np.random.default_rng(2)
    weights = tf.constant(rng.normal(size=(1, 2, 2, 6)).astype("float32"))

    def critic(images, training):
        return tf.reduce_sum(Pack(2)(images) * weights, axis=[1, 2, 3])[:, None]

    real, fake = (tf.constant(rng.normal(size=(4, 2, 2, 3)).astype("float32")) for _ in "rf")
    alpha = tf.repeat(tf.constant([[[[0.3]]], [[[0.8]]]]), 2, axis=0)
    got = gradient_penalty(critic, real, fake, alpha, pack=2).numpy()
    np.testing.assert_allclose(got, (np.linalg.norm(weights.numpy()) - 1.0) ** 2, rtol=1e-5)


def test_consistency_loss_is_the_mean_squared_gap_of_the_logits():
    logits, transformed = tf.constant([[1.0], [2.0]]), tf.constant([[0.0], [4.0]])
    assert float(consistency_loss(logits, transformed)) == pytest.approx((1 + 4) / 2)


def test_the_consistency_transform_flips_and_shifts_each_image_alike_on_every_split():
    images = tf.constant(np.random.default_rng(3).uniform(-1, 1, (4, 8, 8, 3)), tf.float32)
    np.testing.assert_array_equal(
        flip(images, tf.constant([[0.2], [0.7], [0.0], [0.99]])).numpy(),
        np.stack([images[0, :, ::-1], images[1], images[2, :, ::-1], images[3]]),
    )
    seed = tf.constant([0, 5], tf.int64)
    whole = consistency_transform(images, seed, (0, 4)).numpy()
    halves = [consistency_transform(images[i : i + 2], seed, (i, 4)).numpy() for i in (0, 2)]
    np.testing.assert_array_equal(whole, np.concatenate(halves))
    assert not np.array_equal(whole, images.numpy())


def test_consistency_regularisation_limits_the_critic_updates():
    config = tiny_config(consistency_weight=10.0, n_critic=MAX_CONDITIONAL_CRITICS + 1)
    with pytest.raises(ValueError, match="train.consistency_weight allows at most 20"):
        GANTrainer(resolve_settings(config))


GROWTH = {"progressive": (16, 32), "progressive_steps": (1,)}  # 16px, then 32px fading in
GROWTH_FADING = {**GROWTH, "progressive_fade": 1}  # 16px, then a fade-in of one update


@pytest.mark.parametrize(
    "conditional, model_options, options",
    [
        (
            False,
            {"pack": 2, "discriminator_scales": (1, 2), "d_depth": 1},
            {"mixed_precision": "mixed_bfloat16", "jit_compile": True},
        ),
        (False, {"pack": 2, "discriminator_scales": (1, 2)}, {"loss": "bce", "gp_weight": 1.0}),
        (False, {"architecture": "resnet", "pack": 2}, {"augment": ("translation",)}),
        (
            True,
            {"d_depth": 2},
            {"n_critic": 2, "loss": "wasserstein", "gp_weight": 10.0, **GROWTH_FADING},
        ),
        (
            False,
            {"pack": 2, "d_depth": 1},
            {"mixed_precision": "mixed_float16", "update": "alternating", **GROWTH},
        ),
    ],
    ids=[
        "scales-deeper-bfloat16-xla",
        "scales-bce-gp",
        "resnet-augment",
        "conditional-deeper-growth-wasserstein-gp",
        "packed-deeper-growth-float16-alternating",
    ],
)
def test_the_levers_train_with_every_loss_precision_and_model(
    tmp_path, conditional, model_options, options
):
    """Every case has the minibatch stddev, consistency regularisation and R1 (through
    DiffAugment in the resnet case); the unconditional ones pack too (a conditional D
    cannot)."""
    config = tiny_config(conditional, steps=2, consistency_weight=10.0, r1_weight=1.0, **options)
    model = dataclasses.replace(config.model, minibatch_stddev=2, **model_options)
    trainer, metrics = train_tiny(dataclasses.replace(config, model=model), tmp_path)
    assert not trainer.shares_backward  # each logit depends on its group's other inputs
    assert all(np.isfinite(value) for value in metrics.values()), options
    assert metrics["consistency_loss"] > 0, options
    assert metrics["r1_penalty"] > 0, options
    # D's attention snapshot shows a packed D copies of the face.
    assert (tmp_path / "plots" / "attention" / "step_000002.npz").is_file()
