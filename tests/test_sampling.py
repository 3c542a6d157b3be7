"""Sampling from a saved generator: seeds, batches, interpolation and safe loading."""

import keras
import numpy as np
import pytest

from sagan.config import ModelConfig
from sagan.model.networks import build_generator
from sagan.model.saved import load_generator
from sagan.sampling.faces import interpolation, sample_images, slerp
from sagan.sampling.grids import grid, to_uint8

CONFIG = ModelConfig(latent_dim=8, g_width=8, d_width=8)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    build_generator(CONFIG, 32).save(directory / "generator.keras")
    return directory


def test_samples_depend_on_the_seed_not_the_batch_size(models_dir):
    generator = load_generator(models_dir)
    whole = np.concatenate(list(sample_images(generator, 10, seed=3, batch_size=10)))
    pieces = np.concatenate(list(sample_images(generator, 10, seed=3, batch_size=4)))
    other = np.concatenate(list(sample_images(generator, 10, seed=4, batch_size=10)))
    assert whole.shape == (10, 32, 32, 3) and whole.dtype == np.uint8
    np.testing.assert_array_equal(whole, pieces)
    assert not np.array_equal(whole, other)


def test_the_ema_generator_is_preferred(models_dir, tmp_path):
    (tmp_path / "generator.keras").write_bytes((models_dir / "generator.keras").read_bytes())
    keras.utils.set_random_seed(1)
    ema = build_generator(CONFIG, 32)
    ema.save(tmp_path / "generator_ema.keras")
    z = np.ones((2, 8), np.float32)
    np.testing.assert_array_equal(load_generator(tmp_path)(z).numpy(), ema(z).numpy())


def test_a_missing_generator_says_which_stage_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the train stage first"):
        load_generator(tmp_path)


def test_a_model_that_runs_code_on_load_is_refused(tmp_path):
    inputs = keras.Input((8,))
    outputs = keras.layers.Lambda(lambda z: z * 2)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "generator.keras")
    with pytest.raises(ValueError, match="unsafe|Lambda|safe_mode"):
        load_generator(tmp_path)


def test_slerp_stays_on_the_sphere_between_its_ends():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    path = slerp(a, b, np.linspace(0, 1, 5))
    np.testing.assert_allclose(path[0], a, atol=1e-12)
    np.testing.assert_allclose(path[-1], b, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0)
    assert np.degrees(np.arctan2(path[2, 1], path[2, 0])) == pytest.approx(45.0)


def test_interpolation_strip(models_dir):
    strip = interpolation(load_generator(models_dir), seed=0, steps=6)
    assert strip.shape == (6, 32, 32, 3) and strip.dtype == np.uint8


def test_to_uint8_and_grid():
    images = np.array([-1.0, 0.0, 1.0, 2.0]).reshape(4, 1, 1, 1).repeat(3, axis=-1)
    assert to_uint8(images)[:, 0, 0, 0].tolist() == [0, 128, 255, 255]
    tiles = np.arange(5).reshape(5, 1, 1, 1).repeat(3, axis=-1).astype(np.uint8)
    assert grid(tiles, columns=2)[..., 0].tolist() == [[0, 1], [2, 3], [4, 0]]
