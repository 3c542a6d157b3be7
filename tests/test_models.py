"""Generator and discriminator: shapes, ranges, options and saving."""

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pytest

from sagan.config import ConfigError, ModelConfig
from sagan.model.layers import SelfAttention, SpectralNormalization
from sagan.model.networks import build_discriminator, build_generator
from sagan.model.saved import DISCRIMINATOR, GENERATOR, load_model

TINY = ModelConfig(latent_dim=16, g_width=8, d_width=8)  # D packs two images (the default)
PRE_LAYOUT = Path(__file__).parent / "data" / "pre_layout"


def _noise(batch: int = 4, latent_dim: int = 16) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, latent_dim)).astype("float32")


def _layers_of(model: keras.Model, kind: type) -> list:
    return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.mark.parametrize("image_size", [32, 64, 128])
def test_generator_and_discriminator_shapes(image_size):
    generator = build_generator(TINY, image_size)
    discriminator = build_discriminator(TINY, image_size)
    images = generator(_noise()).numpy()
    assert images.shape == (4, image_size, image_size, 3)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert discriminator(images).shape == (2, 1)  # one logit per pack of two


def test_default_models_follow_the_reference():
    generator = build_generator(ModelConfig())
    discriminator = build_discriminator(ModelConfig())
    assert generator.input_shape == (None, 128)
    assert generator.get_layer("project").units == 8 * 8 * 256
    assert [generator.get_layer(f"up{i}").filters for i in (1, 2, 3)] == [128, 64, 3]
    assert generator.get_layer("attention_16").output.shape == (None, 16, 16, 128)
    assert len(_layers_of(generator, keras.layers.BatchNormalization)) == 3
    assert not _layers_of(generator, SpectralNormalization)

    convs = [discriminator.get_layer(f"sn_down{i}").layer for i in (1, 2, 3)]
    assert [conv.filters for conv in convs] == [64, 128, 256]
    assert discriminator.get_layer("attention_16").output.shape == (None, 16, 16, 128)
    assert discriminator.get_layer("sn_logit").layer.units == 1
    assert not _layers_of(discriminator, keras.layers.BatchNormalization)
    slopes = {layer.negative_slope for layer in _layers_of(discriminator, keras.layers.LeakyReLU)}
    assert slopes == {0.2}
    assert generator.count_params() == 2_794_596
    # The reference D, plus the 3·4·4·64 weights its first conv needs for the packed channels.
    assert discriminator.input_shape == (None, 64, 64, 3)
    assert discriminator.get_layer("pack").size == 2
    assert discriminator.count_params() == 696_355 + 3 * 4 * 4 * 64
    assert build_discriminator(ModelConfig(pack=1)).count_params() == 696_355


def test_a_deeper_discriminator_adds_stride_1_convs_after_each_downsampling():
    deeper = build_discriminator(ModelConfig(d_depth=2, pack=1))
    for i, (side, filters) in enumerate(((32, 64), (16, 128), (8, 256)), start=1):
        for j in (1, 2):
            conv = deeper.get_layer(f"sn_down{i}_conv{j}")
            assert (conv.layer.kernel_size, conv.layer.strides) == ((3, 3), (1, 1))
            assert conv.output.shape == (None, side, side, filters)
    extra = 2 * sum(3 * 3 * c * c + c for c in (64, 128, 256))  # kernels and biases
    reference = build_discriminator(ModelConfig(pack=1))
    trainable = sum(int(np.prod(w.shape)) for w in deeper.trainable_weights)
    assert trainable == sum(int(np.prod(w.shape)) for w in reference.trainable_weights) + extra
    images = np.zeros((2, 64, 64, 3), "float32")
    assert deeper(images).shape == (2, 1)


def test_attention_can_be_turned_off_or_moved():
    off = dataclasses.replace(TINY, attention=False)
    assert not _layers_of(build_generator(off), SelfAttention)
    assert not _layers_of(build_discriminator(off), SelfAttention)
    moved = dataclasses.replace(TINY, attention_resolutions=(16, 32))
    names = {layer.name for layer in build_generator(moved).layers}
    assert {"attention_16", "attention_32"} <= names


def test_attention_at_a_resolution_the_network_lacks_is_an_error():
    with pytest.raises(ConfigError, match="model.attention_resolutions"):
        build_generator(dataclasses.replace(TINY, attention_resolutions=(64,)))


def test_generator_spectral_norm_option_wraps_every_projection():
    generator = build_generator(dataclasses.replace(TINY, g_spectral_norm=True))
    wrapped = {layer.layer.name for layer in _layers_of(generator, SpectralNormalization)}
    assert wrapped == {"project", "up1", "up2", "up3"}


def test_official_attention_variant_builds():
    config = dataclasses.replace(TINY, attention_variant="official", attention_spectral_norm=True)
    images = build_generator(config)(_noise())
    assert build_discriminator(config)(images).shape == (2, 1)


@pytest.mark.parametrize("builder", [build_generator, build_discriminator])
def test_models_save_and_load_in_safe_mode(tmp_path, builder):
    model = builder(dataclasses.replace(TINY, attention_variant="official"))
    inputs = _noise() if builder is build_generator else np.zeros((4, 64, 64, 3), "float32")
    for layer in _layers_of(model, SelfAttention):
        layer.gamma.assign(0.3)  # make attention matter for the comparison
    model(inputs, training=True)  # move u and the BN statistics away from their initial values
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())


def test_a_mixed_precision_model_loads_and_runs_in_a_float32_process(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        generator = build_generator(dataclasses.replace(TINY, attention_spectral_norm=True))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    generator.save(tmp_path / "generator.keras")
    loaded = keras.models.load_model(tmp_path / "generator.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded(_noise()).numpy(), generator(_noise()).numpy())


def test_models_saved_before_the_layout_change_still_load_and_compute_the_same():
    # Conditional G and D with self-attention (32px, 3 attribute dims, γ = 0.5), saved with
    # their outputs by the version before sagan/ became one folder per layer.
    generator = load_model(PRE_LAYOUT / GENERATOR)
    discriminator = load_model(PRE_LAYOUT / DISCRIMINATOR)
    with np.load(PRE_LAYOUT / "expected.npz") as expected:
        images = generator([expected["z"], expected["attributes"]], training=False)
        logits = discriminator([expected["images"], expected["attributes"]], training=False)
        np.testing.assert_allclose(images, expected["images"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(logits, expected["logits"], rtol=1e-5, atol=1e-6)


def test_the_safe_loader_names_a_missing_model_and_refuses_code(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .*generator.keras: run the train stage first"):
        load_model(tmp_path / GENERATOR)
    inputs = keras.Input((2,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x + 1)(inputs)).save(tmp_path / "code.keras")
    with pytest.raises(ValueError, match="cannot load .*code.keras: .*safe_mode"):
        load_model(tmp_path / "code.keras")
