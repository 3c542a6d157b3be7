"""Conditional SAGAN: conditional BN, the projection term, the models and the attribute code."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan.config import ConfigError, ModelConfig
from sagan.model.conditioning import conditioning_from_labels, read_conditioning, sweep_codes
from sagan.model.layers import ConditionalBatchNormalization, Projection
from sagan.model.networks import build_discriminator, build_generator

CONFIG = ModelConfig(latent_dim=8, g_width=8, d_width=8, conditional=True, pack=1)
NAMES = ("hair", "glasses", "smile")
CLASSES = (3, 2, 2)
# 10 training images: (hair, glasses, smile) rows, (1, 0, 1) five times
LABELS = np.array([[1, 0, 1]] * 5 + [[0, 1, 0]] * 3 + [[2, 1, 1]] * 2, np.int32)


def _attributes(batch: int, dim: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.eye(dim, dtype="float32")[rng.integers(dim, size=batch)]


def _noise(batch: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 8)).astype("float32")


def test_conditional_models_take_attributes_and_keep_their_shapes():
    generator = build_generator(CONFIG, 32, attribute_dim=5)
    discriminator = build_discriminator(CONFIG, 32, attribute_dim=5)
    images = generator([_noise(), _attributes(4)])
    assert images.shape == (4, 32, 32, 3)
    assert discriminator([images, tf.constant(_attributes(4))]).shape == (4, 1)
    assert [i.name for i in generator.inputs] == ["z", "attributes"]
    kinds = [type(layer) for layer in generator.layers]
    assert kinds.count(ConditionalBatchNormalization) == 2  # every BN of G (after project, up1)
    assert keras.layers.BatchNormalization not in kinds
    assert isinstance(discriminator.get_layer("projection"), Projection)


def test_a_model_needs_an_attribute_length_exactly_when_conditional():
    with pytest.raises(ValueError, match="model.conditional is True"):
        build_generator(CONFIG, 32)
    with pytest.raises(ValueError, match="model.conditional is False"):
        build_discriminator(dataclasses.replace(CONFIG, conditional=False), 32, attribute_dim=5)


def test_conditional_bn_with_a_zero_attribute_map_is_plain_bn():
    x = tf.random.stateless_normal((6, 4, 4, 3), seed=(1, 2)) * 3.0 + 1.0
    attributes = _attributes(6)
    conditional = ConditionalBatchNormalization()
    conditional([x, attributes])
    gamma, beta = np.array([0.5, 2.0, -1.0], "float32"), np.array([0.1, -0.3, 0.7], "float32")
    conditional.scale.set_weights([np.zeros((5, 3), "float32"), gamma])
    conditional.offset.set_weights([np.zeros((5, 3), "float32"), beta])
    plain = keras.layers.BatchNormalization()
    plain(x)
    plain.gamma.assign(gamma)
    plain.beta.assign(beta)
    for training in (True, False, True):  # batch statistics, moving ones, and again
        np.testing.assert_allclose(
            conditional([x, attributes], training=training).numpy(),
            plain(x, training=training).numpy(),
            rtol=1e-5,
            atol=1e-5,
        )


def test_conditional_bn_scales_and_shifts_by_the_attributes():
    x = tf.random.stateless_normal((4, 2, 2, 2), seed=(3, 4))
    layer = ConditionalBatchNormalization()
    attributes = np.eye(2, dtype="float32")[[0, 1, 0, 1]]
    layer([x, attributes])
    layer.scale.set_weights([np.array([[1.0, 1.0], [2.0, 2.0]], "float32"), np.zeros(2, "f4")])
    layer.offset.set_weights([np.array([[0.0, 0.0], [5.0, 5.0]], "float32"), np.zeros(2, "f4")])
    normalized = keras.layers.BatchNormalization(center=False, scale=False)(x, training=True)
    expected = normalized.numpy() * np.array([1, 2, 1, 2])[:, None, None, None]
    expected += np.array([0, 5, 0, 5])[:, None, None, None]
    np.testing.assert_allclose(layer([x, attributes], training=True), expected, atol=1e-5)


def test_the_projection_term_is_its_formula():
    """⟨a V / σ(V), flatten(h)⟩ with σ the top singular value of V."""
    features = tf.random.stateless_normal((3, 2, 2, 6), seed=(5, 6))
    attributes = _attributes(3)
    layer = Projection(power_iterations=50)
    layer([features, attributes])
    kernel = np.random.default_rng(1).standard_normal((5, 2 * 2 * 6)).astype("float32")
    layer.embedding.layer.kernel.assign(kernel)
    layer([features, attributes], training=True)  # 50 power iterations: u converges
    sigma = np.linalg.svd(kernel, compute_uv=False)[0]
    flat = features.numpy().reshape(3, -1)  # (B, H·W·C)
    expected = ((attributes @ kernel / sigma) * flat).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(layer([features, attributes]).numpy(), expected, rtol=1e-4)


def test_the_discriminator_adds_the_projection_to_its_unconditional_logit():
    discriminator = build_discriminator(CONFIG, 32, attribute_dim=5)
    images = tf.random.stateless_uniform((2, 32, 32, 3), seed=(7, 8), minval=-1, maxval=1)
    a, b = tf.constant(_attributes(2, seed=1)), tf.constant(_attributes(2, seed=2))
    projection = discriminator.get_layer("projection")
    features = keras.Model(discriminator.inputs, projection.input[0])([images, a])
    difference = discriminator([images, a]) - discriminator([images, b])
    expected = projection([features, a]) - projection([features, b])
    np.testing.assert_allclose(difference.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_a_saved_conditional_generator_loads_in_safe_mode_and_honours_attributes(tmp_path):
    keras.utils.set_random_seed(0)
    generator = build_generator(CONFIG, 32, attribute_dim=5)
    z = np.repeat(_noise(1), 4, axis=0)  # one z, four attribute vectors
    attributes = np.eye(5, dtype="float32")[[0, 1, 2, 3]]
    generator([_noise(8, seed=3), _attributes(8)], training=True)  # move the BN statistics
    path = tmp_path / "generator.keras"
    generator.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    images = loaded([z, attributes]).numpy()
    np.testing.assert_array_equal(images, generator([z, attributes]).numpy())
    for i in range(1, 4):
        assert np.abs(images[i] - images[0]).max() > 1e-3, "the attributes change the face"


def test_mixed_bfloat16_conditional_models_give_float32_logits_and_load_in_float32(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        generator = build_generator(CONFIG, 32, attribute_dim=5)
        discriminator = build_discriminator(CONFIG, 32, attribute_dim=5)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    inputs = [_noise(), _attributes(4)]
    fake = generator(inputs, training=True)
    logits = discriminator([fake, tf.constant(_attributes(4))], training=True)
    assert logits.dtype == tf.float32 and np.isfinite(logits.numpy()).all()
    generator.save(tmp_path / "generator.keras")
    loaded = keras.models.load_model(tmp_path / "generator.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded(inputs).numpy(), generator(inputs).numpy())


# -- the attribute code and distribution ---------------------------------------------------


def _conditioning(condition_on=("glasses", "hair")):
    return conditioning_from_labels(condition_on, NAMES, CLASSES, LABELS)


def test_unknown_attribute_names_fail_listing_the_valid_ones():
    with pytest.raises(
        ConfigError,
        match=r"model.condition_on: unknown attribute 'blond'; .* are: hair, glasses, smile",
    ):
        _conditioning(("glasses", "blond"))
    with pytest.raises(ConfigError, match="model.conditional needs attribute labels"):
        conditioning_from_labels(None, (), (), np.zeros((3, 0), np.int32))


def test_the_code_is_concatenated_one_hots_in_condition_on_order():
    conditioning = _conditioning()
    assert (conditioning.names, conditioning.classes, conditioning.dim) == (
        ("glasses", "hair"),
        (2, 3),
        5,
    )
    codes = conditioning.select(tf.constant(LABELS[[0, 5, 8]]))
    np.testing.assert_array_equal(codes, [[0, 1], [1, 0], [1, 2]])
    np.testing.assert_array_equal(
        conditioning.encode(codes), [[1, 0, 0, 1, 0], [0, 1, 1, 0, 0], [0, 1, 0, 0, 1]]
    )
    assert _conditioning(None).names == NAMES  # null: every attribute


def test_draws_keep_the_training_frequencies():
    conditioning = _conditioning()
    drawn = conditioning.draw(20_000, seed=(0, 1)).numpy()
    rows, counts = np.unique(drawn, axis=0, return_counts=True)
    np.testing.assert_array_equal(rows, [[0, 1], [1, 0], [1, 2]])  # only rows of the table
    np.testing.assert_allclose(counts / len(drawn), [0.5, 0.3, 0.2], atol=0.015)
    np.testing.assert_array_equal(conditioning.draw(7, seed=(0, 1)), drawn[:7])
    assert not np.array_equal(conditioning.draw(50, seed=(0, 2)), drawn[:50])


def test_fixing_attributes_keeps_only_the_matching_combinations():
    conditioning = _conditioning()
    fixed = conditioning.fixing({"glasses": 1}, "generate.attributes")
    assert set(map(tuple, fixed.draw(200, seed=(1, 1)).numpy())) == {(1, 0), (1, 2)}
    assert conditioning.fixing(None, "generate.attributes") is conditioning
    with pytest.raises(ConfigError, match=r"generate.attributes: .* not conditioned on 'smile'"):
        conditioning.fixing({"smile": 1}, "generate.attributes")
    with pytest.raises(ConfigError, match=r"generate.attributes.hair must be a class from 0 to 2"):
        conditioning.fixing({"hair": 3}, "generate.attributes")
    with pytest.raises(ConfigError, match="no training image has"):
        conditioning.fixing({"glasses": 0, "hair": 2}, "generate.attributes")


def test_the_conditioning_round_trips_through_its_file(tmp_path):
    conditioning = _conditioning()
    conditioning.save(tmp_path / "attributes.json")
    loaded = read_conditioning(tmp_path / "attributes.json")
    assert (loaded.names, loaded.classes, loaded.columns) == (("glasses", "hair"), (2, 3), (1, 0))
    np.testing.assert_array_equal(loaded.rows, conditioning.rows)
    np.testing.assert_array_equal(loaded.counts, conditioning.counts)


def test_a_sweep_sets_one_attribute_to_each_of_its_classes():
    codes = sweep_codes(_conditioning(), np.array([[0, 1], [1, 2]]), attribute=1)
    np.testing.assert_array_equal(codes, [[[0, 0], [0, 1], [0, 2]], [[1, 0], [1, 1], [1, 2]]])
