"""SAGAN's layers: spectral normalization, self-attention, conditional BN and the projection.

Spectral normalization and self-attention make SAGAN; conditional batch normalization (in G)
and the projection term (in D) make it conditional.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from sagan.model.shapes import ATTENTION_REDUCTION

_WRAPPABLE = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)


def _l2_normalize(x, epsilon: float = 1e-12):
    return x / ops.sqrt(ops.sum(ops.square(x)) + epsilon)


@keras.saving.register_keras_serializable(package="sagan")
class SpectralNormalization(keras.layers.Wrapper):
    """Runs a Conv2D, Conv2DTranspose or Dense layer with its kernel divided by σ(W).

    σ(W), the largest singular value of the kernel seen as a matrix with one column per
    output channel, is estimated by power iteration (Miyato et al. 2018, Algorithm 1):

        v = normalize(u Wᵀ),  u = normalize(v W),  σ = v W uᵀ

    with ``u`` a persistent non-trainable vector, refined by ``power_iterations`` steps
    on every training call and frozen otherwise; σ always takes v from the stored u, so a
    training and an inference call agree on σ for the same u and W. σ runs in float32.
    ``u`` and ``v`` are constants for the gradient, but σ is computed from the current
    kernel inside the forward pass, so the gradient flows through σ as the paper requires.
    The kernel variable itself is never overwritten (unlike
    ``keras.layers.SpectralNormalization``): the wrapped layer's op runs on ``W / σ``.
    """

    def __init__(self, layer: keras.layers.Layer, power_iterations: int = 1, **kwargs):
        super().__init__(layer, **kwargs)
        if not isinstance(layer, _WRAPPABLE):
            raise ValueError(
                f"SpectralNormalization wraps Conv2D, Conv2DTranspose or Dense, "
                f"got {type(layer).__name__}"
            )
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose) and (
            layer.data_format != "channels_last"
        ):
            raise ValueError("SpectralNormalization supports channels_last convolutions only")
        if power_iterations < 1:
            raise ValueError(f"power_iterations must be at least 1, got {power_iterations}")
        self.power_iterations = power_iterations

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        out_channels = self._kernel_matrix(self.layer.kernel).shape[-1]
        # The same u on every replica (each computes the same update), so keep one copy.
        self.u = self.add_weight(
            shape=(1, out_channels),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
            name="u",
            aggregation="only_first_replica",
        )
        self.built = True

    def _kernel_matrix(self, kernel):
        """The kernel as a (fan-in, out_channels) matrix."""
        if isinstance(self.layer, keras.layers.Conv2DTranspose):
            kernel = ops.transpose(kernel, (0, 1, 3, 2))  # (kh, kw, C_in, C_out)
        return ops.reshape(kernel, (-1, kernel.shape[-1]))

    def sigma(self, training: bool = False):
        """σ(W) of the current kernel; a training call also refines and stores ``u``."""
        w = self._kernel_matrix(ops.cast(self.layer.kernel, "float32"))  # (K, C_out)
        u = self.u
        for _ in range(self.power_iterations if training else 0):
            v = _l2_normalize(ops.matmul(u, ops.transpose(w)))  # (1, K)
            u = _l2_normalize(ops.matmul(v, w))  # (1, C_out)
        u = ops.stop_gradient(u)
        v = ops.stop_gradient(_l2_normalize(ops.matmul(u, ops.transpose(w))))
        if training:
            self.u.assign(u)
        return ops.squeeze(ops.matmul(ops.matmul(v, w), ops.transpose(u)))

    def call(self, inputs, training=None):
        kernel = ops.cast(self.layer.kernel, "float32") / self.sigma(training=bool(training))
        return self._run_layer(inputs, ops.cast(kernel, inputs.dtype))

    def _run_layer(self, inputs, kernel):
        """The wrapped layer's own forward pass, with ``kernel`` in place of its variable."""
        layer = self.layer
        if isinstance(layer, keras.layers.Dense):
            outputs = ops.matmul(inputs, kernel)
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            outputs = ops.conv_transpose(
                inputs,
                kernel,
                strides=layer.strides,
                padding=layer.padding,
                output_padding=layer.output_padding,
                dilation_rate=layer.dilation_rate,
                data_format=layer.data_format,
            )
        else:
            outputs = layer.convolution_op(inputs, kernel)
        if layer.use_bias:
            outputs = outputs + ops.cast(layer.bias, outputs.dtype)
        return outputs if layer.activation is None else layer.activation(outputs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}


def _conv1x1(filters: int, name: str, spectral_norm: bool, dtype) -> keras.layers.Layer:
    conv = keras.layers.Conv2D(filters, 1, name=name, dtype=dtype)
    return SpectralNormalization(conv, name=f"sn_{name}", dtype=dtype) if spectral_norm else conv


@keras.saving.register_keras_serializable(package="sagan")
class SelfAttention(keras.layers.Layer):
    """Self-attention over all spatial positions with a learnable gate γ (SAGAN, §3).

        q = x W_q,  k = x W_k   (1×1 convs to C/8)
        v = x W_v               (1×1 conv to C)
        A = softmax(q kᵀ)       (each query's row sums to 1 over the keys)
        y = γ · (A v) + x       (γ starts at 0, so the block starts as the identity)

    ``variant="official"`` follows the authors' code instead: v goes to C/2 and a 1×1
    output conv maps A v back to C, and keys and values are 2×2 max-pooled (4× fewer keys).
    ``call(x, return_attention=True)`` also returns A, shaped (B, HW, keys).
    """

    def __init__(self, variant: str = "reference", spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        if variant not in ("reference", "official"):
            raise ValueError(f"variant must be 'reference' or 'official', got {variant!r}")
        self.variant = variant
        self.spectral_norm = spectral_norm

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels < 8:
            raise ValueError(f"SelfAttention needs at least 8 channels, got {channels}")
        value_channels = channels // 2 if self.variant == "official" else channels
        # The inner convs follow this layer's policy, not whatever the global one is when a
        # saved model is loaded (a mixed_bfloat16 generator loaded in a float32 process).
        policy = self.dtype_policy
        reduced = channels // ATTENTION_REDUCTION
        self.query = _conv1x1(reduced, "query", self.spectral_norm, policy)
        self.key = _conv1x1(reduced, "key", self.spectral_norm, policy)
        self.value = _conv1x1(value_channels, "value", self.spectral_norm, policy)
        for conv in (self.query, self.key, self.value):
            conv.build(input_shape)
        value_shape = (*input_shape[:-1], value_channels)
        if self.variant == "official":
            self.output_conv = _conv1x1(channels, "output", self.spectral_norm, policy)
            self.output_conv.build(value_shape)
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")
        self.built = True

    def call(self, x, training=None, return_attention: bool = False):
        height, width = x.shape[1], x.shape[2]
        keys, values = self.key(x, training=training), self.value(x, training=training)
        if self.variant == "official":
            keys = ops.max_pool(keys, pool_size=2, strides=2)
            values = ops.max_pool(values, pool_size=2, strides=2)
        q = _flatten_positions(self.query(x, training=training))  # (B, HW, C/8)
        k = _flatten_positions(keys)  # (B, N, C/8), N = HW or HW/4
        v = _flatten_positions(values)  # (B, N, C or C/2)
        # Softmax in float32 so mixed precision cannot overflow the logits.
        logits = ops.matmul(
            ops.cast(q, "float32"), ops.transpose(ops.cast(k, "float32"), (0, 2, 1))
        )
        attention = ops.softmax(logits, axis=-1)  # (B, HW, N)
        attended = ops.matmul(ops.cast(attention, v.dtype), v)  # (B, HW, C or C/2)
        attended = ops.reshape(attended, (-1, height, width, attended.shape[-1]))
        if self.variant == "official":
            attended = self.output_conv(attended, training=training)
        outputs = ops.cast(self.gamma, attended.dtype) * attended + x
        return (outputs, attention) if return_attention else outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "variant": self.variant,
            "spectral_norm": self.spectral_norm,
        }


def _flatten_positions(x):
    return ops.reshape(x, (-1, x.shape[1] * x.shape[2], x.shape[3]))  # (B, H, W, C) -> (B, HW, C)


@keras.saving.register_keras_serializable(package="sagan")
class ConditionalBatchNormalization(keras.layers.Layer):
    """BatchNorm whose scale and offset are linear maps of the attribute vector.

        y = γ(a) · (x − μ) / sqrt(σ² + ε) + β(a),  γ(a) = a W_γ + b_γ,  β(a) = a W_β + b_β

    ``a`` is the concatenated one-hot attribute vector (B, K); for a one-hot ``a`` the rows
    of W are the per-class embeddings of the official SAGAN's conditional BN. b_γ starts at
    1 and b_β at 0, so with W = 0 the layer is plain BatchNorm with γ = b_γ and β = b_β.
    The statistics are synchronized over replicas, as in the unconditional generator.
    Called on ``[x (B, H, W, C), a (B, K)]``.
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, input_shape):
        features_shape, attributes_shape = input_shape
        channels = features_shape[-1]
        policy = self.dtype_policy  # sublayers follow this layer's policy (see SelfAttention)
        self.normalize = keras.layers.BatchNormalization(
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=False,
            scale=False,
            synchronized=True,
            name="normalize",
            dtype=policy,
        )
        self.scale = _attribute_map(channels, "ones", "scale", policy)
        self.offset = _attribute_map(channels, "zeros", "offset", policy)
        self.normalize.build(features_shape)
        self.scale.build(attributes_shape)
        self.offset.build(attributes_shape)
        self.built = True

    def call(self, inputs, training=None):
        features, attributes = inputs
        normalized = self.normalize(features, training=training)  # (B, H, W, C)
        scale = self.scale(attributes)[:, None, None, :]  # (B, 1, 1, C)
        offset = self.offset(attributes)[:, None, None, :]
        return normalized * ops.cast(scale, normalized.dtype) + ops.cast(offset, normalized.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


def _attribute_map(channels: int, bias: str, name: str, dtype) -> keras.layers.Dense:
    # Small random W (as mimicry's class embeddings, N(·, 0.02)): conditioning from step one.
    kernel = keras.initializers.RandomNormal(stddev=0.02)
    return keras.layers.Dense(
        channels, kernel_initializer=kernel, bias_initializer=bias, name=name, dtype=dtype
    )


@keras.saving.register_keras_serializable(package="sagan")
class Projection(keras.layers.Layer):
    """The projection discriminator's attribute term (Miyato & Koyama 2018, eq. 3):

        φ(x) = flatten(h(x))         (D's last feature map, the vector its linear logit reads)
        term = ⟨a V / σ(V), φ(x)⟩     (a: one-hot attributes (B, K); V: (K, H·W·C) embedding)

    As in the paper, the projection and the unconditional logit ψ(φ(x)) share one φ: our D's
    logit is a Dense over the flattened map, so φ is that map flattened (a ResNet D's is a
    sum over positions). With V spectrally normalized like ψ (the official code's
    ``SNEmbedding``), the two terms have the same bound; a sum-pooled φ would let the
    projection outweigh ψ by up to √(H·W) and, in our runs, let D win from the first steps.
    Called on ``[h (B, H, W, C), a (B, K)]``; returns (B, 1), summed in float32.
    """

    def __init__(self, power_iterations: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.power_iterations = power_iterations

    def build(self, input_shape):
        features_shape, attributes_shape = input_shape
        policy = self.dtype_policy
        flat_size = math.prod(features_shape[1:])
        embedding = keras.layers.Dense(flat_size, use_bias=False, name="embedding", dtype=policy)
        self.embedding = SpectralNormalization(
            embedding, self.power_iterations, name="sn_embedding", dtype=policy
        )
        self.embedding.build(attributes_shape)
        self.built = True

    def call(self, inputs, training=None):
        features, attributes = inputs
        flat = ops.reshape(ops.cast(features, "float32"), (ops.shape(features)[0], -1))
        embedded = ops.cast(self.embedding(attributes, training=training), "float32")
        term = ops.sum(embedded * flat, axis=-1, keepdims=True)  # (B, 1)
        return ops.cast(term, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}


@keras.saving.register_keras_serializable(package="sagan")
class GlobalSumPooling(keras.layers.Layer):
    """(B, H, W, C) → (B, C): the sum over positions that ends a residual D (SNGAN, SAGAN).

    A sum, not a mean: the authors' D reads Σ h, and the spectrally normalized linear layer
    after it sees the same scale. Summed in float32.
    """

    def call(self, x):
        return ops.cast(ops.sum(ops.cast(x, "float32"), axis=(1, 2)), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@keras.saving.register_keras_serializable(package="sagan")
class MinibatchStddev(keras.layers.Layer):
    """(B, H, W, C) → (B, H, W, C + 1): the minibatch standard deviation (Karras et al. 2018).

    The batch is cut into groups of ``group_size`` consecutive images. Within a group, the
    standard deviation over its images of every feature at every position is averaged to one
    number, which each image of the group gets as an extra constant channel. A generator that
    draws too few kinds of face makes that number small, so D can tell its batches from real
    ones. Groups are consecutive so that a replica's slice of the batch holds whole groups:
    N replicas compute what one device would. Computed in float32.
    """

    def __init__(self, group_size: int, **kwargs):
        super().__init__(**kwargs)
        self.group_size = group_size

    def call(self, x):
        batch, height, width, channels = x.shape
        group = self.group_size if batch is None else min(self.group_size, batch)
        if batch is not None and batch % group:
            raise ValueError(
                f"model.minibatch_stddev: a batch of {batch} images does not split into groups "
                f"of {group}"
            )
        grouped = ops.reshape(ops.cast(x, "float32"), (-1, group, height, width, channels))
        variance = ops.var(grouped, axis=1)  # (B / group, H, W, C)
        spread = ops.mean(ops.sqrt(variance + 1e-8), axis=(1, 2, 3))  # (B / group,)
        spread = ops.repeat(spread, group, axis=0)  # each image its group's number
        spread = ops.broadcast_to(ops.reshape(spread, (-1, 1, 1, 1)), ops.shape(x[..., :1]))
        return ops.concatenate([x, ops.cast(spread, x.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


@keras.saving.register_keras_serializable(package="sagan")
class Pack(keras.layers.Layer):
    """(B, H, W, C) → (B / m, H, W, m·C): PacGAN's packing (Lin et al. 2018).

    Each run of ``m`` consecutive images becomes one input whose channels are theirs side by
    side, so D judges m real or m generated images at once. A generator that draws too few
    kinds of face fills a pack with near copies, which real packs rarely are; the paper
    proves that this penalises mode collapse. Consecutive images, so a replica's slice of the
    batch holds whole packs.
    """

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def call(self, x):
        batch, height, width, channels = x.shape
        if batch is not None and batch % self.size:
            raise ValueError(
                f"model.pack: a batch of {batch} images does not split into packs of {self.size}"
            )
        packs = ops.reshape(x, (-1, self.size, height, width, channels))
        packs = ops.transpose(packs, (0, 2, 3, 1, 4))  # (B / m, H, W, m, C)
        return ops.reshape(packs, (-1, height, width, self.size * channels))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        packs = None if batch is None else batch // self.size
        return (packs, height, width, self.size * channels)

    def get_config(self):
        return {**super().get_config(), "size": self.size}
