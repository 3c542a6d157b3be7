"""Progressive growing (Karras et al. 2018) of the reference G and D: one model per stage.

``train.progressive`` lists the resolutions, e.g. 16, 32, 64. Training starts with G and D at
the first; each later resolution first fades in, then trains alone:

    G at r:        … → block r → toRGB_r → tanh                     (r < S: a 3×3 conv head)
    G fading to r: (1 − α)·upsample(image at r/2) + α·(block r → its RGB)
    D at r:        fromRGB_r → LReLU → the reference D from its r-px map on
    D fading to r: (1 − α)·fromRGB_{r/2}(avgpool(x)) + α·block(x), then D from r/2 on

The blocks are the reference networks' own (:mod:`sagan.model.networks`), so the models of
the last stage, at the image size, are the ordinary G and D: same layers, same names, no
head. At S the RGB of G's last block is the reference's last transposed convolution, and D's
block on the image is its first convolution. Self-attention comes with the map of its
resolution: at 16×16 it is there from a 16-px first phase on, in G on the last feature map
before toRGB_16, in D on fromRGB_16's map, so it relates the whole face's 16×16 cells from
the first update, and keeps that place in the final networks.

toRGB is a 3×3 conv, not ProGAN's 1×1: the map below it comes straight out of a stride-2
transposed conv, whose four output parities keep their own statistics; a 1×1 head passes
that period-2 pattern to the pixels, where D spots it at once (it won outright within 25
updates at 32 px; with 3×3 heads its hinge loss stays near 1, as the default's does).

Every stage's model shares the layers (and weights) of one graph; ``everything`` holds all
of them (heads included), for the optimizers, the EMA and the checkpoints. α is a
non-trainable weight of each :class:`FadeIn` layer, set by the train step from the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import ops

from sagan.config import ModelConfig
from sagan.model.layers import SpectralNormalization
from sagan.model.networks import DiscriminatorLayers, generator_graph
from sagan.model.parts import generator_inputs, packed, symbolic_inputs


@dataclass(frozen=True)
class Stage:
    """A stretch of training with one model: its resolution, and whether it is fading in."""

    resolution: int
    fading: bool

    @property
    def name(self) -> str:
        return f"{'fade_to' if self.fading else 'at'}_{self.resolution}"


def stages(resolutions: tuple[int, ...], fade: int) -> list[Stage]:
    """The stages of ``train.progressive`` in training order (no fading ones when fade is 0)."""
    found = [Stage(resolutions[0], False)]
    for resolution in resolutions[1:]:
        if fade > 0:
            found.append(Stage(resolution, True))
        found.append(Stage(resolution, False))
    return found


@keras.saving.register_keras_serializable(package="sagan")
class FadeIn(keras.layers.Layer):
    """``(1 − α)·old + α·new`` on ``[old, new]``; α is a non-trainable weight in [0, 1]."""

    def build(self, input_shape):
        self.alpha = self.add_weight(shape=(), initializer="zeros", trainable=False, name="alpha")
        self.built = True

    def call(self, inputs):
        old, new = inputs
        alpha = ops.cast(self.alpha, new.dtype)
        return old + alpha * (new - old)

    def compute_output_shape(self, input_shape):
        return input_shape[1]


@dataclass(frozen=True)
class Growing:
    """The models of every stage of one progressive network, and their fade-in layers."""

    models: dict[Stage, keras.Model]
    fades: dict[int, FadeIn]  # by the resolution each fades in
    everything: keras.Model  # every layer of every stage


def grow_generator(
    config: ModelConfig,
    resolutions: tuple[int, ...],
    fade: int,
    attribute_dim: int | None = None,
) -> Growing:
    """G of each stage: z [, attributes] → images (B, r, r, 3) in [-1, 1]."""
    image_size = resolutions[-1]
    z, attributes = generator_inputs(config, attribute_dim)
    features, final_images = generator_graph(config, image_size, z, attributes)
    images = {image_size: final_images}
    for resolution in resolutions[:-1]:
        head = keras.layers.Conv2D(3, 3, padding="same", name=f"to_rgb_{resolution}")
        if config.g_spectral_norm:
            head = SpectralNormalization(head, config.power_iterations, name=f"sn_{head.name}")
        images[resolution] = keras.layers.Activation(
            "tanh", dtype="float32", name=f"images_{resolution}"
        )(head(features[resolution]))
    outputs, fades = {}, {}
    for stage in stages(resolutions, fade):
        if stage.fading:
            coarse = keras.layers.UpSampling2D(2)(images[stage.resolution // 2])
            fades[stage.resolution] = FadeIn(dtype="float32", name=f"fade_{stage.resolution}")
            outputs[stage] = fades[stage.resolution]([coarse, images[stage.resolution]])
        else:
            outputs[stage] = images[stage.resolution]
    inputs = symbolic_inputs(z, attributes)
    models = {
        stage: keras.Model(inputs, output, name="generator") for stage, output in outputs.items()
    }
    everything = keras.Model(inputs, list(outputs.values()), name="generator_stages")
    return Growing(models, fades, everything)


def grow_discriminator(
    config: ModelConfig,
    resolutions: tuple[int, ...],
    fade: int,
    attribute_dim: int | None = None,
) -> Growing:
    """D of each stage: images (B, r, r, 3) [, attributes] → logits (B / pack, 1)."""
    image_size = resolutions[-1]
    layers = DiscriminatorLayers(config, image_size)
    attributes = None
    if attribute_dim is not None:
        attributes = keras.Input((attribute_dim,), name="attributes")
    heads: dict[int, SpectralNormalization] = {}

    def from_rgb(images: keras.KerasTensor, resolution: int) -> keras.KerasTensor:
        """The map of side ``resolution`` that D's block would make, from the image of that size."""
        if resolution not in heads:
            conv = keras.layers.Conv2D(
                layers.channels(resolution), 1, name=f"from_rgb_{resolution}"
            )
            heads[resolution] = SpectralNormalization(
                conv, config.power_iterations, name=f"sn_{conv.name}"
            )
        return keras.layers.LeakyReLU(config.leaky_relu_slope)(heads[resolution](images))

    models, fades = {}, {}
    # The last stage first, so that the ordinary D's layers are made in the ordinary order;
    # it keeps the plain names (Keras wants names unique within `everything`).
    for stage in reversed(stages(resolutions, fade)):
        r, last = stage.resolution, stage == Stage(image_size, False)
        images = keras.Input((r, r, 3), name="images" if last else f"images_{stage.name}")
        judged = packed(config, images, "pack" if last else f"pack_{stage.name}")
        x = judged if r == image_size else from_rgb(judged, r)
        entry = r
        if stage.fading:
            fades[r] = FadeIn(name=f"fade_{r}")
            coarse = from_rgb(keras.layers.AveragePooling2D(2)(judged), r // 2)
            x, entry = fades[r]([coarse, layers.block(x, r)]), r // 2
        logits = keras.layers.Activation(
            "linear", dtype="float32", name="logits" if last else f"logits_{stage.name}"
        )(layers.logit_from(x, entry, attributes))
        models[stage] = keras.Model(
            symbolic_inputs(images, attributes), logits, name="discriminator"
        )
    everything = keras.Model(
        [m.inputs[0] for m in models.values()] + ([] if attributes is None else [attributes]),
        [m.outputs[0] for m in models.values()],
        name="discriminator_stages",
    )
    return Growing(models, fades, everything)
