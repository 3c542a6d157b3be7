"""VGG19 feature matching: the formula against NumPy, VGG19's input convention, the weights
(a local file, the download and its offline failure) and what training does with it."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan.config import ConfigError, TrainConfig
from sagan.training import perceptual
from sagan.training.perceptual import (
    VGG19_WEIGHTS_URL,
    feature_network,
    perceptual_loss,
    vgg19_weights_file,
    vgg_input,
)
from sagan.training.settings import resolve_settings
from sagan.training.step import GANTrainer
from tests.helpers import IMAGE_SIZE, images, perceptual_options, tiny_config


def test_the_loss_is_the_squared_gap_of_the_batch_mean_features_averaged_per_layer():
    rng = np.random.default_rng(0)
    shapes = [(6, 8, 8, 4), (6, 4, 4, 16)]
    real = [rng.normal(size=shape).astype(np.float32) for shape in shapes]
    fake = [rng.normal(size=shape).astype(np.float32) for shape in shapes]
    expected = sum(
        np.mean((r.mean(axis=0) - f.mean(axis=0)) ** 2, dtype=np.float64)
        for r, f in zip(real, fake, strict=True)
    )
    got = perceptual_loss(
        [tf.reduce_mean(r, axis=0) for r in real], [tf.reduce_mean(f, axis=0) for f in fake]
    )
    assert float(got) == pytest.approx(expected, rel=1e-6)
    same = [tf.reduce_mean(r, axis=0) for r in real]
    assert float(perceptual_loss(same, same)) == 0.0


def test_images_reach_vgg19_in_its_caffe_convention():
    pixels = np.random.default_rng(1).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    expected = keras.applications.vgg19.preprocess_input((pixels + 1.0) * 127.5)
    np.testing.assert_allclose(vgg_input(tf.constant(pixels)).numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_the_network_loads_a_local_file_and_stops_at_the_deepest_layer(tmp_path, suffix):
    keras.utils.set_random_seed(3)
    vgg = keras.applications.VGG19(include_top=False, weights=None)
    path = tmp_path / f"vgg19{suffix}"
    vgg.save_weights(path) if suffix == ".weights.h5" else vgg.save(path)

    network = feature_network(("block1_conv2", "block2_pool"), IMAGE_SIZE, path)
    assert not network.trainable_weights
    assert [output.shape[1:] for output in network.outputs] == [(32, 32, 64), (8, 8, 128)]
    assert "block3_conv1" not in [layer.name for layer in network.layers]
    x = np.random.default_rng(2).normal(size=(2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
    reference = keras.Model(vgg.input, vgg.get_layer("block2_pool").output)
    np.testing.assert_allclose(network(x)[1], reference(x), rtol=1e-5, atol=1e-5)


def test_a_file_that_holds_no_vgg19_is_named(tmp_path):
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "other.keras")
    with pytest.raises(ConfigError, match="train.perceptual_weights: .*other.keras does not hold"):
        feature_network(("block1_conv2",), IMAGE_SIZE, tmp_path / "other.keras")
    missing = TrainConfig(perceptual_weight=1.0, perceptual_weights=str(tmp_path / "nope.h5"))
    with pytest.raises(ConfigError, match="train.perceptual_weights names .*nope.h5, which does"):
        vgg19_weights_file(missing)


def test_without_a_file_keras_imagenet_weights_are_fetched_once_into_its_cache(monkeypatch):
    fetched = []

    def get_file(name, origin, cache_subdir, file_hash):
        fetched.append((name, origin, cache_subdir, file_hash))
        return f"/cache/{name}"

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    path = vgg19_weights_file(TrainConfig(perceptual_weight=1.0))
    assert path.name == perceptual.VGG19_WEIGHTS_FILE
    assert fetched == [
        (
            perceptual.VGG19_WEIGHTS_FILE,
            VGG19_WEIGHTS_URL,
            "models",
            perceptual.VGG19_WEIGHTS_MD5,
        )
    ]
    # The file keras.applications.VGG19(weights="imagenet", include_top=False) fetches:
    assert VGG19_WEIGHTS_URL == keras.src.applications.vgg19.WEIGHTS_PATH_NO_TOP


def test_offline_the_error_names_the_key_and_where_keras_fetches_from(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception(f"URL fetch failure on {VGG19_WEIGHTS_URL}: None -- [Errno -3]")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(ConfigError) as error:
        vgg19_weights_file(TrainConfig(perceptual_weight=1.0))
    message = str(error.value)
    assert "train.perceptual_weights" in message and VGG19_WEIGHTS_URL in message
    assert "\n" not in message


def _fixed_batch_dataset():
    batch = next(iter(images()))
    return tf.data.Dataset.from_tensors(batch).repeat()


def _feature_gaps(weights, perceptual_weight: float, steps: int = 12):
    """P over ``steps`` updates of G on one fixed real batch, and the trainer."""
    # D's learning rate tiny: what moves P is G's update, with λ·P against L_G.
    options = {**perceptual_options(weights), "perceptual_weight": perceptual_weight}
    config = tiny_config(steps=steps, g_lr=1e-3, d_lr=1e-9, ema_decay=None, **options)
    trainer = GANTrainer(resolve_settings(config))
    iterator = iter(_fixed_batch_dataset())
    gaps = [float(trainer.train_step(iterator)["perceptual_loss"]) for _ in range(steps)]
    return gaps, trainer


def test_training_on_the_loss_closes_the_feature_gap_and_never_touches_vgg19(vgg19_stand_in):
    negligible, _ = _feature_gaps(vgg19_stand_in, 1e-6)
    gaps, trainer = _feature_gaps(vgg19_stand_in, 1e3)
    assert gaps[0] == pytest.approx(negligible[0])  # the same start
    # Each step's fake batch is new noise: compare the last three with the first three.
    assert np.mean(gaps[-3:]) < 0.85 * np.mean(gaps[:3]), gaps
    assert np.mean(gaps[-3:]) < 0.9 * np.mean(negligible[-3:]), (gaps, negligible)
    fresh = feature_network(trainer.train_config.perceptual_layers, IMAGE_SIZE, vgg19_stand_in)
    for trained, loaded in zip(trainer.perceptual.weights, fresh.weights, strict=True):
        np.testing.assert_array_equal(trained.numpy(), loaded.numpy())
    generator_variables = {id(v) for v in trainer.generator.trainable_variables}
    assert not generator_variables & {id(v) for v in trainer.perceptual.weights}
