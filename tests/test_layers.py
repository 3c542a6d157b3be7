"""Spectral normalization and self-attention against their definitions."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan.model.layers import SelfAttention, SpectralNormalization


def _svd_sigma(layer: SpectralNormalization) -> float:
    """Top singular value of the kernel with output channels as the last axis."""
    kernel = layer.layer.kernel.numpy()
    if isinstance(layer.layer, keras.layers.Conv2DTranspose):
        kernel = kernel.transpose(0, 1, 3, 2)  # (kh, kw, C_out, C_in) -> (kh, kw, C_in, C_out)
    return float(np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0])


WRAPPED = {
    "conv2d": (lambda: keras.layers.Conv2D(16, 3, padding="same"), (2, 8, 8, 4)),
    "conv2d_transpose": (lambda: keras.layers.Conv2DTranspose(8, 4, 2, "same"), (2, 8, 8, 12)),
    "dense": (lambda: keras.layers.Dense(10), (2, 24)),
}


def _wrapped(kind: str, power_iterations: int = 1):
    make_layer, input_shape = WRAPPED[kind]
    keras.utils.set_random_seed(0)
    layer = SpectralNormalization(make_layer(), power_iterations)
    inputs = tf.random.stateless_normal(input_shape, seed=(1, 2))
    layer(inputs)
    return layer, inputs


@pytest.mark.parametrize("kind", WRAPPED)
def test_sigma_converges_to_the_top_singular_value(kind):
    layer, inputs = _wrapped(kind)
    for _ in range(50):
        layer(inputs, training=True)
    sigma = float(layer.sigma())
    assert sigma == pytest.approx(_svd_sigma(layer), rel=0.01)
    normalized = layer.layer.kernel.numpy() / sigma
    if kind == "conv2d_transpose":
        normalized = normalized.transpose(0, 1, 3, 2)
    top = np.linalg.svd(normalized.reshape(-1, normalized.shape[-1]), compute_uv=False)[0]
    assert top == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize("kind", WRAPPED)
def test_output_equals_the_wrapped_layer_with_the_normalized_kernel(kind):
    layer, inputs = _wrapped(kind)
    sigma = layer.sigma()
    kernel = layer.layer.kernel.numpy()
    layer.layer.kernel.assign(kernel / sigma.numpy())
    expected = layer.layer(inputs).numpy()
    layer.layer.kernel.assign(kernel)
    np.testing.assert_allclose(layer(inputs).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", WRAPPED)
def test_gradient_flows_through_sigma(kind):
    layer, inputs = _wrapped(kind)
    kernel = layer.layer.kernel
    with tf.GradientTape() as tape:
        through_sigma = tf.reduce_sum(tf.square(layer(inputs)))
    (gradient,) = tape.gradient(through_sigma, [kernel])

    # The same output with σ held constant: W / stop_gradient(σ).
    sigma = tf.constant(layer.sigma())
    with tf.GradientTape() as tape:
        constant_sigma = tf.reduce_sum(tf.square(layer._run_layer(inputs, kernel / sigma)))
    (gradient_constant_sigma,) = tape.gradient(constant_sigma, [kernel])

    assert float(through_sigma) == pytest.approx(float(constant_sigma), rel=1e-5)
    difference = np.abs(gradient.numpy() - gradient_constant_sigma.numpy()).max()
    assert difference > 1e-3 * np.abs(gradient.numpy()).max()


@pytest.mark.parametrize("kind", WRAPPED)
def test_u_updates_only_in_training_and_the_kernel_is_never_written(kind):
    layer, inputs = _wrapped(kind)
    kernel, u = layer.layer.kernel.numpy(), layer.u.numpy()
    layer(inputs, training=False)
    np.testing.assert_array_equal(layer.u.numpy(), u)
    layer(inputs, training=True)
    assert not np.array_equal(layer.u.numpy(), u)
    np.testing.assert_array_equal(layer.layer.kernel.numpy(), kernel)


def test_more_power_iterations_per_call_converge_faster():
    one, inputs = _wrapped("dense", power_iterations=1)
    ten, _ = _wrapped("dense", power_iterations=10)
    one(inputs, training=True)
    ten(inputs, training=True)
    truth = _svd_sigma(one)
    assert abs(float(ten.sigma()) - truth) < abs(float(one.sigma()) - truth)
    assert float(ten.sigma()) == pytest.approx(truth, rel=0.01)


def test_spectral_norm_works_in_a_jit_compiled_training_step():
    layer, inputs = _wrapped("conv2d")
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function(jit_compile=True)
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(layer(x, training=True))
        grads = tape.gradient(loss, layer.trainable_variables)
        optimizer.apply_gradients(zip(grads, layer.trainable_variables, strict=True))
        return loss

    u = layer.u.numpy()
    assert np.isfinite(float(step(inputs)))
    assert not np.array_equal(layer.u.numpy(), u)


def test_spectral_norm_trains_under_mirrored_strategy():
    """Two logical CPUs must be set before TensorFlow starts, hence a fresh process."""
    script = textwrap.dedent(
        """
        import numpy as np, tensorflow as tf, keras
        cpu = tf.config.list_physical_devices("CPU")[0]
        two_cpus = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, two_cpus)
        from sagan.model.layers import SpectralNormalization
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            layer = SpectralNormalization(keras.layers.Dense(4))
            layer.build((None, 6))
            optimizer = keras.optimizers.Adam(1e-2)
            optimizer.build(layer.trainable_variables)
        u = layer.u.numpy()

        @tf.function
        def step(x):
            def replica_step(x):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(layer(x, training=True)) / 4.0
                grads = tape.gradient(loss, layer.trainable_variables)
                optimizer.apply_gradients(zip(grads, layer.trainable_variables, strict=True))
                return loss
            return strategy.run(replica_step, args=(x,))

        dataset = tf.data.Dataset.from_tensor_slices(np.ones((8, 6), "float32")).batch(4)
        for batch in strategy.experimental_distribute_dataset(dataset):
            step(batch)
        assert not np.array_equal(layer.u.numpy(), u)
        print("OK")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]


def test_spectral_norm_refuses_other_layers():
    with pytest.raises(ValueError, match="Conv2D, Conv2DTranspose or Dense"):
        SpectralNormalization(keras.layers.BatchNormalization())


def _feature_map(channels: int = 16, size: int = 8) -> tf.Tensor:
    return tf.random.stateless_normal((2, size, size, channels), seed=(3, 4))


@pytest.mark.parametrize("variant", ["reference", "official"])
def test_attention_with_zero_gamma_is_the_identity(variant):
    x = _feature_map()
    attention = SelfAttention(variant)
    np.testing.assert_array_equal(attention(x).numpy(), x.numpy())


def test_attention_matches_its_formula():
    keras.utils.set_random_seed(0)
    x = _feature_map()
    layer = SelfAttention()
    layer(x)
    layer.gamma.assign(0.7)
    outputs, attention = layer(x, return_attention=True)

    def conv(conv_layer, features):  # 1×1 conv = per-position matmul
        return (
            features.reshape(2, 64, -1) @ conv_layer.kernel.numpy()[0, 0] + conv_layer.bias.numpy()
        )

    features = x.numpy()
    q, k, v = conv(layer.query, features), conv(layer.key, features), conv(layer.value, features)
    logits = q @ k.transpose(0, 2, 1)
    expected_attention = np.exp(logits - logits.max(-1, keepdims=True))
    expected_attention /= expected_attention.sum(-1, keepdims=True)
    expected = 0.7 * (expected_attention @ v).reshape(features.shape) + features
    np.testing.assert_allclose(attention.numpy(), expected_attention, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(outputs.numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(attention.numpy().sum(-1), 1.0, atol=1e-5)


def test_attention_map_is_optional_and_does_not_change_the_output():
    x = _feature_map()
    layer = SelfAttention()
    layer(x)
    layer.gamma.assign(0.5)
    outputs, attention = layer(x, return_attention=True)
    np.testing.assert_array_equal(layer(x).numpy(), outputs.numpy())
    assert attention.shape == (2, 64, 64)


def test_official_variant_shapes():
    x = _feature_map(channels=32, size=8)
    layer = SelfAttention("official")
    outputs, attention = layer(x, return_attention=True)
    assert outputs.shape == x.shape
    assert attention.shape == (2, 64, 16)  # every position attends to 4× fewer pooled keys
    assert layer.query.kernel.shape == (1, 1, 32, 4)  # C/8
    assert layer.key.kernel.shape == (1, 1, 32, 4)  # C/8
    assert layer.value.kernel.shape == (1, 1, 32, 16)  # C/2
    assert layer.output_conv.kernel.shape == (1, 1, 16, 32)  # back to C
    np.testing.assert_allclose(attention.numpy().sum(-1), 1.0, atol=1e-5)


def test_attention_convs_can_be_spectrally_normalized():
    layer = SelfAttention(spectral_norm=True)
    layer(_feature_map())
    assert all(
        isinstance(conv, SpectralNormalization) for conv in (layer.query, layer.key, layer.value)
    )
