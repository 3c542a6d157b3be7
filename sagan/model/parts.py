"""Inputs and layers that both architectures (reference and resnet) are built from."""

from __future__ import annotations

import keras

from sagan.config import ConfigError, ModelConfig
from sagan.model.layers import Pack, SelfAttention, SpectralNormalization


def attended_resolutions(config: ModelConfig, inner: list[int], image_size: int) -> tuple[int, ...]:
    """``model.attention_resolutions``, each checked to be one of the network's ``inner`` maps."""
    if not config.attention:
        return ()
    for resolution in config.attention_resolutions:
        if resolution not in inner:
            raise ConfigError(
                f"model.attention_resolutions: {resolution} is not an inner feature-map size "
                f"at image_size {image_size}; choose from {inner}"
            )
    return config.attention_resolutions


def maybe_spectral_norm(layer: keras.layers.Layer, enabled: bool, power_iterations: int):
    """``layer`` wrapped in spectral normalization when ``enabled``, else ``layer`` itself."""
    return (
        SpectralNormalization(layer, power_iterations, name=f"sn_{layer.name}")
        if enabled
        else layer
    )


def batch_norm(name: str) -> keras.layers.BatchNormalization:
    """BatchNorm, synchronized: under MirroredStrategy the statistics cover the global batch,
    so a multi-replica step computes what a single device would (a no-op on one device)."""
    return keras.layers.BatchNormalization(synchronized=True, name=name)


def self_attention(config: ModelConfig, name: str) -> SelfAttention:
    return SelfAttention(config.attention_variant, config.attention_spectral_norm, name=name)


def attributes_input(config: ModelConfig, attribute_dim: int | None) -> keras.KerasTensor | None:
    """The (B, K) one-hot attribute input of a conditional model; None for an unconditional one."""
    if config.conditional != (attribute_dim is not None):
        raise ValueError(
            f"model.conditional is {config.conditional} but attribute_dim is {attribute_dim}: "
            "a conditional model needs the length of its attribute vector, and only it"
        )
    return None if attribute_dim is None else keras.Input((attribute_dim,), name="attributes")


def generator_inputs(
    config: ModelConfig, attribute_dim: int | None
) -> tuple[keras.KerasTensor, keras.KerasTensor | None]:
    """The noise input and, for a conditional G, the attribute input."""
    z = keras.Input((config.latent_dim,), name="z")
    return z, attributes_input(config, attribute_dim)


def symbolic_inputs(x: keras.KerasTensor, attributes: keras.KerasTensor | None):
    """A model's inputs: ``x`` alone, or ``[x, attributes]`` for a conditional model."""
    return x if attributes is None else [x, attributes]


def packed(config: ModelConfig, images: keras.KerasTensor, name: str = "pack") -> keras.KerasTensor:
    """D's images, packed ``model.pack`` at a time along the channels (unchanged for 1)."""
    return images if config.pack == 1 else Pack(config.pack, name=name)(images)
