"""The paper's residual SAGAN (``model.architecture: resnet``), after the authors' code
(brain-research/self-attention-gan, ``generator.py`` and ``discriminator.py``).

At 128×128 with widths w (``model.g_width``, ``model.d_width``; the authors' gf_dim, df_dim: 64):

    G: z → SN Dense → 4×4×16w → up-blocks to 8 (16w), 16 (8w), 32 (4w), 64 (2w), 128 (w)
         → BN, ReLU → SN Conv 3×3 (3) → tanh
       up-block: BN, ReLU, ×2 nearest, SN Conv 3×3, BN, ReLU, SN Conv 3×3
                 + shortcut: ×2 nearest, SN Conv 1×1
    D: x [→ packed] → first block to 64 (w) → down-blocks to 32 (2w), 16 (4w), 8 (8w), 4 (16w)
         [→ minibatch stddev] → a block that keeps 4×4 (16w) → ReLU → sum over positions
         → SN Dense 1
       down-block:  ReLU, SN Conv 3×3, ReLU, SN Conv 3×3, 2×2 average pool
                    + shortcut: SN Conv 1×1, 2×2 average pool
       first block: the same without the leading ReLU (it reads the image; Miyato et al.'s
                    "optimized" block)

The widths mirror each other: G's map at resolution r has w·min(16, S/r) channels and D's
w·min(16, S/2r) (S the image size), so G starts from and D ends at a 4×4×16w map at 64 and
at 128 px. Self-attention follows the block that makes each ``model.attention_resolutions``
map, in G and in D (the authors attend at 32 at 128 px). A conditional G's up-block BNs are
conditional (its last BN stays plain, as the authors'), and a conditional D adds the
projection ⟨embed(a), Σ h⟩ on the same pooled features as its logit (Miyato & Koyama 2018).
D is always spectrally normalized, G when ``model.g_spectral_norm`` (the paper's choice).
Convolutions have biases and Keras's Glorot-uniform initialisation (the authors' Xavier).
"""

from __future__ import annotations

import keras

from sagan.config import ModelConfig
from sagan.model import shapes
from sagan.model.layers import (
    ConditionalBatchNormalization,
    GlobalSumPooling,
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
from sagan.model.shapes import (
    MAX_MULTIPLIER,
    RESNET_BASE,
    resnet_discriminator_channels,
    resnet_generator_channels,
)

BASE_RESOLUTION = RESNET_BASE  # G starts from, and D ends at, a 4×4 feature map


def inner_resolutions(image_size: int) -> list[int]:
    """The feature-map sizes strictly between the 4×4 base and the image (8 … S/2)."""
    return shapes.inner_resolutions("resnet", image_size)


def build_generator(
    config: ModelConfig, image_size: int = 64, attribute_dim: int | None = None
) -> keras.Model:
    """z (B, latent_dim) [, attributes (B, attribute_dim)] → images (B, S, S, 3) in [-1, 1]."""
    z, attributes = generator_inputs(config, attribute_dim)
    attend_at = attended_resolutions(config, inner_resolutions(image_size), image_size)

    def sn(layer: keras.layers.Layer) -> keras.layers.Layer:
        return maybe_spectral_norm(layer, config.g_spectral_norm, config.power_iterations)

    def normalize(x, name: str):
        if attributes is None:
            return batch_norm(name)(x)
        return ConditionalBatchNormalization(name=name)([x, attributes])

    def up_block(x, filters: int, name: str):
        h = keras.layers.ReLU()(normalize(x, f"{name}_bn1"))
        h = keras.layers.UpSampling2D(2)(h)
        h = sn(keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1"))(h)
        h = keras.layers.ReLU()(normalize(h, f"{name}_bn2"))
        h = sn(keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2"))(h)
        shortcut = keras.layers.UpSampling2D(2)(x)
        shortcut = sn(keras.layers.Conv2D(filters, 1, name=f"{name}_shortcut"))(shortcut)
        return keras.layers.Add()([shortcut, h])

    resolution = BASE_RESOLUTION
    base_channels = resnet_generator_channels(config.g_width, image_size, resolution)
    x = sn(keras.layers.Dense(resolution * resolution * base_channels, name="project"))(z)
    x = keras.layers.Reshape((resolution, resolution, base_channels))(x)
    while resolution < image_size:
        resolution *= 2
        filters = resnet_generator_channels(config.g_width, image_size, resolution)
        x = up_block(x, filters, f"up{resolution}")
        if resolution in attend_at:
            x = self_attention(config, f"attention_{resolution}")(x)
    x = keras.layers.ReLU()(batch_norm("output_bn")(x))
    x = sn(keras.layers.Conv2D(3, 3, padding="same", name="to_rgb"))(x)
    images = keras.layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(symbolic_inputs(z, attributes), images, name="generator")


def build_discriminator(
    config: ModelConfig, image_size: int = 64, attribute_dim: int | None = None
) -> keras.Model:
    """images (B, S, S, 3) [, attributes (B, attribute_dim)] → logits (B / pack, 1)."""
    images = keras.Input((image_size, image_size, 3), name="images")
    attributes = attributes_input(config, attribute_dim)
    attend_at = attended_resolutions(config, inner_resolutions(image_size), image_size)

    def conv(filters: int, size: int, name: str) -> SpectralNormalization:
        layer = keras.layers.Conv2D(filters, size, padding="same", name=name)
        return SpectralNormalization(layer, config.power_iterations, name=f"sn_{name}")

    def block(x, filters: int, name: str, first: bool = False, downsample: bool = True):
        h = x if first else keras.layers.ReLU()(x)
        h = conv(filters, 3, f"{name}_conv1")(h)
        h = conv(filters, 3, f"{name}_conv2")(keras.layers.ReLU()(h))
        shortcut = x
        if downsample or x.shape[-1] != filters:  # the authors' rule: identity only when neither
            shortcut = conv(filters, 1, f"{name}_shortcut")(shortcut)
        if downsample:
            h = keras.layers.AveragePooling2D(2)(h)
            shortcut = keras.layers.AveragePooling2D(2)(shortcut)
        return keras.layers.Add()([shortcut, h])

    x, resolution = packed(config, images), image_size
    while resolution > BASE_RESOLUTION:
        resolution //= 2
        filters = resnet_discriminator_channels(config.d_width, image_size, resolution)
        x = block(x, filters, f"down{resolution}", first=resolution == image_size // 2)
        if resolution in attend_at:
            x = self_attention(config, f"attention_{resolution}")(x)
    if config.minibatch_stddev is not None:
        x = MinibatchStddev(config.minibatch_stddev, name="minibatch_stddev")(x)
    filters = config.d_width * min(MAX_MULTIPLIER, image_size // BASE_RESOLUTION)
    x = block(x, filters, f"keep{BASE_RESOLUTION}", downsample=False)
    features = GlobalSumPooling(name="sum_pool")(keras.layers.ReLU()(x))  # (B, C)
    logit_layer = keras.layers.Dense(1, name="logit")
    logit = SpectralNormalization(logit_layer, config.power_iterations, name="sn_logit")(features)
    if attributes is not None:
        projection = Projection(config.power_iterations, name="projection")
        logit = keras.layers.Add(name="logit_plus_projection")(
            [logit, projection([features, attributes])]
        )
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logit)
    return keras.Model(symbolic_inputs(images, attributes), logits, name="discriminator")
