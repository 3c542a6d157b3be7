"""Generator and discriminator builders: the reference architecture, or the residual one.

At 64×64 with the default widths:

    G: z (128) → Dense → 8×8×256 → BN, ReLU
         → ConvT 128 (16×16), BN, ReLU → self-attention (16×16)
         → ConvT 64 (32×32), BN, ReLU → ConvT 3 (64×64), tanh
    D: x (64×64×3) [→ packed] → SN Conv 64 (32×32), LReLU → SN Conv 128 (16×16), LReLU
         → self-attention (16×16) → SN Conv 256 (8×8), LReLU [→ minibatch stddev]
         → Flatten → SN Dense 1

Every (transposed) convolution has stride 2; the number of blocks follows from the image
size (8 → image_size in G, image_size → 8 in D). With ``model.discriminator_scales`` D is
one such network per factor, each on the image average-pooled by it (a logit per scale).

Conditional models (``model.conditional``) take a second input, the concatenated one-hot
attribute vector (B, K): every BN of G becomes a conditional BN, and D adds the projection
term ⟨embed(a), flatten(h)⟩ to its logit, h being the last feature map, whose flattening the
unconditional logit reads too (Miyato & Koyama 2018). Unconditional models are unchanged.
"""

from __future__ import annotations

import functools
import math

import keras

from sagan.config import ConfigError, ModelConfig
from sagan.model import resnet, shapes
from sagan.model.layers import (
    ConditionalBatchNormalization,
    MinibatchStddev,
    Projection,
    SpectralNormalization,
)
from sagan.model.parts import (
    attended_resolutions,
    attributes_input,
    batch_norm,
    generator_inputs,
    maybe_spectral_norm,
    packed,
    self_attention,
    symbolic_inputs,
)

BASE_RESOLUTION = shapes.REFERENCE_BASE  # G starts from, and D ends at, an 8×8 feature map


def block_widths(width: int, num_blocks: int) -> list[int]:
    """Channel widths ``width · 2^(n-1), …, width · 2, width``: G's order (D uses it reversed)."""
    return [width * 2 ** (num_blocks - 1 - i) for i in range(num_blocks)]


def num_blocks(image_size: int) -> int:
    """Stride-2 blocks between the 8×8 base and ``image_size`` (3 for 64×64)."""
    blocks = math.log2(image_size / BASE_RESOLUTION)
    if image_size < 2 * BASE_RESOLUTION or not blocks.is_integer():
        raise ConfigError(f"data.image_size must be 8·2^k with k ≥ 1, got {image_size}")
    return int(blocks)


def inner_resolutions(image_size: int) -> list[int]:
    """The feature-map sizes between the 8×8 base and ``image_size`` (16, 32 at 64×64)."""
    num_blocks(image_size)  # a size the blocks reach
    return shapes.inner_resolutions("reference", image_size)


def attention_resolutions(config: ModelConfig, image_size: int) -> tuple[int, ...]:
    """The feature-map sizes that get self-attention, checked against the network's shape."""
    return attended_resolutions(config, inner_resolutions(image_size), image_size)


def build_generator(
    config: ModelConfig, image_size: int = 64, attribute_dim: int | None = None
) -> keras.Model:
    """z (B, latent_dim) [, attributes (B, attribute_dim)] → images (B, S, S, 3) in [-1, 1].

    The reference G, or the residual one of :mod:`sagan.model.resnet` when
    ``model.architecture`` is resnet.
    """
    if config.architecture == "resnet":
        return resnet.build_generator(config, image_size, attribute_dim)
    z, attributes = generator_inputs(config, attribute_dim)
    _, images = generator_graph(config, image_size, z, attributes)
    return keras.Model(symbolic_inputs(z, attributes), images, name="generator")


def generator_graph(
    config: ModelConfig,
    image_size: int,
    z: keras.KerasTensor,
    attributes: keras.KerasTensor | None,
) -> tuple[dict[int, keras.KerasTensor], keras.KerasTensor]:
    """G's layers on its inputs: the feature map at each inner resolution, and the images.

    The feature map of resolution r (16, 32 at 64×64) is what the block that makes it
    returns, after its attention layer when it has one.
    """
    blocks = num_blocks(image_size)
    widths = block_widths(config.g_width, blocks)
    attend_at = attention_resolutions(config, image_size)

    def sn(layer):
        return maybe_spectral_norm(layer, config.g_spectral_norm, config.power_iterations)

    def up(filters: int, name: str):
        return sn(keras.layers.Conv2DTranspose(filters, config.kernel_size, 2, "same", name=name))

    def normalize(x, name: str):
        if attributes is None:
            return batch_norm(name)(x)
        return ConditionalBatchNormalization(name=name)([x, attributes])

    x = sn(keras.layers.Dense(BASE_RESOLUTION * BASE_RESOLUTION * widths[0], name="project"))(z)
    x = keras.layers.Reshape((BASE_RESOLUTION, BASE_RESOLUTION, widths[0]))(x)
    x = normalize(x, "project_bn")
    x = keras.layers.ReLU()(x)
    features = {}
    resolution = BASE_RESOLUTION
    for i, filters in enumerate(widths[1:], start=1):
        resolution *= 2
        x = up(filters, f"up{i}")(x)
        x = normalize(x, f"up{i}_bn")
        x = keras.layers.ReLU()(x)
        if resolution in attend_at:
            x = self_attention(config, f"attention_{resolution}")(x)
        features[resolution] = x
    x = up(3, f"up{blocks}")(x)
    images = keras.layers.Activation("tanh", dtype="float32", name="images")(x)
    return features, images


def build_discriminator(
    config: ModelConfig, image_size: int = 64, attribute_dim: int | None = None
) -> keras.Model:
    """images (B, S, S, 3) [, attributes (B, attribute_dim)] → logits (B / pack, scales).

    One logit per image for each factor of ``model.discriminator_scales`` (pix2pixHD's
    multi-scale D): the D of factor f sees the image average-pooled by f and has the
    reference's layers for an S/f-pixel input, named with a ``scale<f>_`` prefix (factor 1
    keeps the plain names, so the default single D is unchanged). Each D attends at the
    ``model.attention_resolutions`` its feature maps reach. The residual D of
    :mod:`sagan.model.resnet` when ``model.architecture`` is resnet (one scale).
    """
    if config.architecture == "resnet":
        return resnet.build_discriminator(config, image_size, attribute_dim)
    attention_resolutions(config, image_size)  # the full-size image's check, as in G
    images = keras.Input((image_size, image_size, 3), name="images")
    attributes = attributes_input(config, attribute_dim)
    judged = packed(config, images)
    logits = []
    for factor in config.discriminator_scales:
        scaled = judged
        prefix = "" if factor == 1 else f"scale{factor}_"
        if factor > 1:
            scaled = keras.layers.AveragePooling2D(factor, name=f"{prefix}pool")(judged)
        layers = DiscriminatorLayers(config, image_size // factor, prefix)
        logits.append(layers.logit_from(scaled, image_size // factor, attributes))
    if len(logits) > 1:
        logits = [keras.layers.Concatenate(name="logit_per_scale")(logits)]  # (B, scales)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits[0])
    return keras.Model(symbolic_inputs(images, attributes), logits, name="discriminator")


class DiscriminatorLayers:
    """The reference D's layers for ``image_size``-px images, to be entered at any resolution.

    ``logit_from(x, r)`` runs the layers from the r-px map ``x`` (the image itself when r is
    the image size) to the logit; a progressive D enters at its phase's resolution. Each
    layer is made on first use and shared by every later entry. (Made on first use, not up
    front: Keras draws each layer's initializer seed when the layer is made, so this order
    keeps the weights of a given ``train.seed`` what they always were.)
    """

    def __init__(self, config: ModelConfig, image_size: int, prefix: str = ""):
        self.config = config
        self.image_size = image_size
        self.prefix = prefix
        self.widths = block_widths(config.d_width, num_blocks(image_size))[::-1]
        self.attend_at = [
            r
            for r in config.attention_resolutions
            if config.attention and r in inner_resolutions(image_size)
        ]
        self._layers: dict[str, keras.layers.Layer] = {}

    def channels(self, resolution: int) -> int:
        """Channels of the map at ``resolution`` (below the image's): what a block makes."""
        return self.widths[self._block_index(resolution * 2) - 1]

    def _block_index(self, resolution: int) -> int:
        """1 for the block that reads the image, 2 for the next, …"""
        return int(math.log2(self.image_size // resolution)) + 1

    def _layer(self, name: str, make) -> keras.layers.Layer:
        """The layer ``<prefix><name>``, made by ``make(that full name)`` on first use."""
        name = self.prefix + name
        if name not in self._layers:
            self._layers[name] = make(name)
        return self._layers[name]

    def _sn(self, layer: keras.layers.Layer) -> SpectralNormalization:
        return SpectralNormalization(layer, self.config.power_iterations, name=f"sn_{layer.name}")

    def block(self, x: keras.KerasTensor, resolution: int) -> keras.KerasTensor:
        """The stride-2 block that takes the ``resolution``-px map to half its side, then
        ``model.d_depth`` stride-1 3x3 convolutions at that side."""
        i = self._block_index(resolution)
        filters, kernel_size = self.widths[i - 1], self.config.kernel_size
        convs = [(f"down{i}", kernel_size, 2)]
        convs += [(f"down{i}_conv{j}", 3, 1) for j in range(1, self.config.d_depth + 1)]
        for name, size, stride in convs:
            conv = self._layer(
                name,
                lambda name, size=size, stride=stride: self._sn(
                    keras.layers.Conv2D(filters, size, stride, "same", name=name)
                ),
            )
            x = keras.layers.LeakyReLU(self.config.leaky_relu_slope)(conv(x))
        return x

    def logit_from(
        self, x: keras.KerasTensor, resolution: int, attributes: keras.KerasTensor | None
    ) -> keras.KerasTensor:
        """(B, 1) logits [+ projection] of the ``resolution``-px map ``x``."""
        while True:
            if resolution in self.attend_at:
                attention = functools.partial(self_attention, self.config)
                x = self._layer(f"attention_{resolution}", attention)(x)
            if resolution == BASE_RESOLUTION:
                break
            x = self.block(x, resolution)
            resolution //= 2
        if self.config.minibatch_stddev is not None:
            group = self.config.minibatch_stddev
            x = self._layer("minibatch_stddev", lambda name: MinibatchStddev(group, name=name))(x)
        dense = self._layer("logit", lambda name: self._sn(keras.layers.Dense(1, name=name)))
        logit = dense(keras.layers.Flatten()(x))
        if attributes is None:
            return logit
        iterations = self.config.power_iterations
        projection = self._layer("projection", lambda name: Projection(iterations, name=name))
        add = self._layer("logit_plus_projection", lambda name: keras.layers.Add(name=name))
        return add([logit, projection([x, attributes])])
