"""The networks' shape rules, in one place: which feature maps exist and how wide they are.

The builders (:mod:`sagan.model.networks`, :mod:`sagan.model.resnet`, the self-attention
layer) and the config's load-time check (:mod:`sagan.config`) both read these, so a rule is
written once. The module imports nothing from ``sagan``: the config, the lowest floor, reads
it without a cycle.
"""

from __future__ import annotations

REFERENCE_BASE = 8  # the reference G starts from, and its D ends at, an 8×8 map
RESNET_BASE = 4  # the residual networks': 4×4
MAX_MULTIPLIER = 16  # no residual map is wider than 16 × its network's width
ATTENTION_REDUCTION = 8  # self-attention's query and key have a map's channels / 8


def base_resolution(architecture: str) -> int:
    """The smallest feature map of ``model.architecture``'s G and D."""
    return RESNET_BASE if architecture == "resnet" else REFERENCE_BASE


def inner_resolutions(architecture: str, image_size: int) -> list[int]:
    """The feature-map sizes strictly between the base map and the image (16, 32 for the
    reference at 64×64): where self-attention can sit."""
    sizes, resolution = [], 2 * base_resolution(architecture)
    while resolution < image_size:
        sizes.append(resolution)
        resolution *= 2
    return sizes


def resnet_generator_channels(width: int, image_size: int, resolution: int) -> int:
    """Channels of the residual G's ``resolution``-px map: w·min(16, S/r)."""
    return width * min(MAX_MULTIPLIER, image_size // resolution)


def resnet_discriminator_channels(width: int, image_size: int, resolution: int) -> int:
    """Channels of the residual D's ``resolution``-px map: w·min(16, S/2r)."""
    return width * min(MAX_MULTIPLIER, image_size // (2 * resolution))
