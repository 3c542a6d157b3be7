"""Typed, immutable configuration loaded from ``params.yaml``.

Every tunable lives in one frozen dataclass per ``params.yaml`` section. The
loader checks each key against its dataclass: an unknown key, a wrong type or an
out-of-range value raises :class:`ConfigError` naming the full key
(``train.batch_size must be a positive integer, got -3``), so a typo never falls
back silently to a default. A key left out of a section takes the default shown
here, which is the value in the repository's ``params.yaml`` (a test keeps them
equal); a whole section left out is an error.

Constraints on one value sit beside its field as ``metadata``: ``min``/``max``
bounds (inclusive), ``positive`` (strictly greater than zero), ``choices`` and
``power_of_two``. Constraints between values (``evaluate.kid_subset_size`` at most
``evaluate.num_samples``, ...) are checked once the whole file is read, so every
stage refuses an impossible combination before it does any work.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sagan.model import shapes

PARAMS_FILE = "params.yaml"
# DiffAugment's transforms (sagan.training.augment), in the order they apply.
AUGMENTATIONS = ("color", "translation", "cutout")
# Keras VGG19's layers that train.perceptual_layers can match features at (ReLU outputs and
# pools): five blocks of 2, 2, 4, 4 and 4 convolutions.
VGG19_LAYERS = tuple(
    name
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1)
    for name in (*(f"block{block}_conv{i}" for i in range(1, convs + 1)), f"block{block}_pool")
)
# The layers before VGG19's first max-pool, whose gradient XLA computes deterministically.
VGG19_BLOCK1 = ("block1_conv1", "block1_conv2")
# What train.keep_best can choose the best checkpoint by, and whether lower is better: the
# scores of sagan.evaluation (metrics.py, attribute_coverage.py) on the validation split.
QUALITY_METRICS = {
    "fid": "lower",
    "kid": "lower",
    "precision": "higher",
    "recall": "higher",
    "density": "higher",
    "coverage": "higher",
    "attribute_tv": "lower",
    "attribute_tv_max": "lower",
    "dropped_classes": "lower",
    "coherence": "higher",
}
# D's stride-2 blocks end at an 8x8 map, so its smallest input has one block: 16 px.
MIN_DISCRIMINATOR_INPUT = 16


class ConfigError(ValueError):
    """A params value that is missing, unknown, of the wrong type, out of range, or impossible
    together with another value."""


def _positive(default: Any, **more: Any) -> Any:
    return field(default=default, metadata={"positive": True, **more})


def _choice(default: str, *choices: str) -> Any:
    return field(default=default, metadata={"choices": choices})


def _between(default: Any, low: float, high: float) -> Any:
    return field(default=default, metadata={"min": low, "max": high})


@dataclass(frozen=True)
class DataConfig:
    source: str = _choice("synthetic", "synthetic", "folder", "tfds")
    path: str | None = None
    image_size: int = field(default=64, metadata={"choices": (32, 64, 128)})
    num_train: int | None = _positive(20000)
    num_test: int | None = _positive(2000)
    num_validation: int | None = _positive(2000)
    seed: int = field(default=0, metadata={"min": 0})
    crop_size: int | None = _positive(140)
    small_images: str = _choice("upsample", "upsample", "skip")
    images_per_shard: int = _positive(4096)
    max_bad_fraction: float = _between(0.01, 0.0, 1.0)
    workers: int | None = _positive(None)


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = _choice("reference", "reference", "resnet")
    latent_dim: int = _positive(128)
    g_width: int = _positive(64)
    d_width: int = _positive(64)
    d_depth: int = field(default=0, metadata={"min": 0})
    kernel_size: int = _positive(4)
    leaky_relu_slope: float = _between(0.2, 0.0, 1.0)
    attention: bool = True
    attention_resolutions: tuple[int, ...] = field(default=(16,), metadata={"power_of_two": True})
    attention_variant: str = _choice("reference", "reference", "official")
    attention_spectral_norm: bool = False
    g_spectral_norm: bool = False
    power_iterations: int = _positive(1)
    conditional: bool = False
    condition_on: tuple[str, ...] | None = None
    discriminator_scales: tuple[int, ...] = field(default=(1,), metadata={"power_of_two": True})
    minibatch_stddev: int | None = _positive(None)
    pack: int = _positive(2)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = _positive(64)
    steps: int = _positive(3000)
    epochs: float | None = _positive(None)
    n_critic: int = _positive(1)
    update: str = _choice("simultaneous", "simultaneous", "alternating")
    g_lr: float = _positive(1.0e-4)
    d_lr: float = _positive(1.0e-4)
    lr_schedule: str = _choice("constant", "constant", "linear")
    beta_1: float = _between(0.0, 0.0, 0.999999)
    beta_2: float = _between(0.9, 0.0, 0.999999)
    loss: str = _choice("hinge", "hinge", "bce", "wasserstein")
    gp_weight: float = field(default=0.0, metadata={"min": 0.0})
    r1_weight: float = field(default=0.0, metadata={"min": 0.0})
    r1_every: int = _positive(1)
    ema_decay: float | None = _between(0.995, 0.0, 0.999999)
    ema_start: int = field(default=500, metadata={"min": 0})
    standing_samples: int = _positive(512)
    augment: tuple[str, ...] | None = field(default=None, metadata={"choices": AUGMENTATIONS})
    consistency_weight: float = field(default=0.0, metadata={"min": 0.0})
    perceptual_weight: float = field(default=0.0, metadata={"min": 0.0})
    perceptual_layers: tuple[str, ...] = field(
        default=("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4"),
        metadata={"choices": VGG19_LAYERS},
    )
    perceptual_weights: str | None = None
    progressive: tuple[int, ...] | None = field(default=None, metadata={"power_of_two": True})
    progressive_steps: tuple[int, ...] = _positive((400, 400))
    progressive_fade: int = field(default=200, metadata={"min": 0})
    strategy: str = _choice("auto", "auto", "default", "mirrored", "multi_worker")
    worker_wait: float = _positive(120.0)
    mixed_precision: str = _choice("auto", "auto", "none", "mixed_float16", "mixed_bfloat16")
    jit_compile: bool | str = field(default="auto", metadata={"choices": ("auto", True, False)})
    deterministic: bool = True
    seed: int = field(default=0, metadata={"min": 0})
    checkpoint_every: int = _positive(100)
    keep_checkpoints: int = _positive(3)
    log_every: int = _positive(10)
    sample_every: int = _positive(100)
    eval_every: int | None = _positive(500)
    eval_samples: int = _positive(1000)
    keep_best: str | None = field(default="fid", metadata={"choices": tuple(QUALITY_METRICS)})


@dataclass(frozen=True)
class GenerateConfig:
    num_samples: int = _positive(1000)
    seed: int = field(default=0, metadata={"min": 0})
    batch_size: int = _positive(250)
    interpolation_steps: int = field(default=10, metadata={"min": 2})
    attributes: dict[str, int] | None = field(default=None, metadata={"min": 0})


@dataclass(frozen=True)
class EncoderConfig:
    steps: int = _positive(1500)
    feature_dim: int = _positive(128)
    batch_size: int = _positive(64)
    learning_rate: float = _positive(1.0e-3)
    seed: int = field(default=0, metadata={"min": 0})


@dataclass(frozen=True)
class EvaluateConfig:
    num_samples: int = _positive(1000)
    extractor: str = _choice("encoder", "encoder", "inception", "keras_inception")
    inception_graph: str | None = None
    kid_subset_size: int = field(default=500, metadata={"min": 2})  # MMD²ᵤ needs pairs
    kid_subsets: int = _positive(100)
    pr_k: int = _positive(3)
    seed: int = field(default=0, metadata={"min": 0})
    intra_fid_attribute: str | None = None


# Query points of the attention figures, as (row, column) fractions of the image: where
# the synthetic faces (and aligned CelebA crops) have these parts.
DEFAULT_QUERIES = {
    "left_eye": (0.46, 0.41),
    "mouth": (0.59, 0.5),
    "hair": (0.24, 0.5),
    "background": (0.08, 0.08),
}


@dataclass(frozen=True)
class AttentionConfig:
    num_images: int = _between(4, 1, 64)
    queries: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_QUERIES), metadata={"min": 0.0, "max": 1.0}
    )


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "sagan"
    registered_model: str = field(default="sagan-generator", metadata={"name": True})


@dataclass(frozen=True)
class Config:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    generate: GenerateConfig = GenerateConfig()
    encoder: EncoderConfig = EncoderConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    attention: AttentionConfig = AttentionConfig()
    mlflow: MlflowConfig = MlflowConfig()


def load_config(path: str | Path = PARAMS_FILE) -> Config:
    """Read and validate a params file (``yaml.safe_load``: no YAML tags run code)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    return config_from_dict({} if raw is None else raw, source=str(path))


def config_from_dict(raw: Any, source: str = "params") -> Config:
    """Build a :class:`Config` from already-parsed YAML, validating every key and how the
    values combine."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a mapping of sections, got {type(raw).__name__}")
    config = _build(Config, raw, prefix="", require_all=True)
    _check_combinations(config)
    return config


def _check_combinations(config: Config) -> None:
    """Raise a ConfigError naming both keys of the first pair of values that cannot go together.

    Checks that need the prepared data stay where it is read: the test split's size against
    ``evaluate.kid_subset_size`` and ``evaluate.pr_k`` (the metrics' own argument checks), the
    manifest's attributes against ``model.condition_on``, ``generate.attributes`` and
    ``evaluate.intra_fid_attribute`` when ``model.condition_on`` is null (they can only be
    named once the attributes are known), and the step budget of ``train.epochs``.
    """
    data, model, train = config.data, config.model, config.train
    generate, evaluate = config.generate, config.evaluate
    if data.source == "folder" and data.path is None:
        raise ConfigError(
            "data.path must name a folder or .zip of images for data.source folder, got null"
        )
    for key in ("num_train", "num_test", "num_validation"):
        if data.source == "synthetic" and getattr(data, key) is None:
            raise ConfigError(
                f"data.{key} must be a positive integer for data.source synthetic (it is "
                "how many faces to generate), got null"
            )
    if model.attention:
        inner = shapes.inner_resolutions(model.architecture, data.image_size)
        for resolution in model.attention_resolutions:
            if resolution not in inner:
                raise ConfigError(
                    f"model.attention_resolutions ({list(model.attention_resolutions)}) must "
                    f"be inner feature-map sizes at data.image_size ({data.image_size}): "
                    f"choose from {inner}, or set model.attention: false"
                )
    _check_scales(model.discriminator_scales, data.image_size)
    _check_discriminator_batches(model, train)
    if model.architecture == "resnet":
        _check_resnet(config)
    if not model.conditional:
        conditional_only = {
            "model.condition_on": model.condition_on and list(model.condition_on),
            "generate.attributes": generate.attributes,
            "evaluate.intra_fid_attribute": evaluate.intra_fid_attribute,
        }
        for key, value in conditional_only.items():
            if value is not None:
                raise ConfigError(
                    f"{key} ({value!r}) is for a conditional model, but model.conditional is "
                    f"false: set {key} to null or model.conditional to true"
                )
    if model.condition_on is not None:
        _check_conditioned(model.condition_on, generate, evaluate)
    if train.ema_decay is not None and train.epochs is None and train.ema_start >= train.steps:
        raise ConfigError(
            f"train.ema_start ({train.ema_start}) must be below train.steps ({train.steps}), "
            "or the EMA generator never averages: lower ema_start, raise steps, or set "
            "ema_decay to null to sample G itself"
        )
    if train.r1_weight > 0 and train.epochs is None and train.r1_every > train.steps:
        raise ConfigError(
            f"train.r1_every ({train.r1_every}) must be at most train.steps ({train.steps}), "
            "or no update takes R1: lower r1_every, or set r1_weight to 0"
        )
    if train.ema_decay is not None and train.standing_samples < train.batch_size:
        raise ConfigError(
            f"train.standing_samples ({train.standing_samples}) must be at least "
            f"train.batch_size ({train.batch_size}): the EMA generator's BatchNorm statistics "
            "are refitted on whole batches"
        )
    if train.augment is not None and list(train.augment) != sorted(
        set(train.augment), key=AUGMENTATIONS.index
    ):
        raise ConfigError(
            f"train.augment ({list(train.augment)}) must list each transform once, in the "
            f"order {', '.join(AUGMENTATIONS)} (the order they apply in)"
        )
    if train.jit_compile is True and xla_cannot_be_deterministic(train):
        past_block1 = sorted(set(train.perceptual_layers) - set(VGG19_BLOCK1))
        raise ConfigError(
            "train.perceptual_weight > 0 with train.jit_compile and train.deterministic: XLA "
            "has no deterministic gradient of VGG19's max-pools (needed for "
            f"{past_block1[0]}); set jit_compile (or deterministic) to false, or to auto"
        )
    if train.progressive is not None:
        _check_progressive(config)
    _check_evaluation_during_training(config)
    # evaluate reads the first evaluate.num_samples of generate's images.
    if evaluate.num_samples > generate.num_samples:
        raise ConfigError(
            f"evaluate.num_samples ({evaluate.num_samples}) must be at most "
            f"generate.num_samples ({generate.num_samples}): lower evaluate.num_samples or "
            "raise generate.num_samples"
        )
    if evaluate.kid_subset_size > evaluate.num_samples:
        raise ConfigError(
            f"evaluate.kid_subset_size ({evaluate.kid_subset_size}) must be at most "
            f"evaluate.num_samples ({evaluate.num_samples}): lower kid_subset_size or raise "
            "num_samples"
        )
    if evaluate.pr_k >= evaluate.num_samples:  # every sample needs pr_k neighbours besides itself
        raise ConfigError(
            f"evaluate.pr_k ({evaluate.pr_k}) must be below evaluate.num_samples "
            f"({evaluate.num_samples}): lower pr_k or raise num_samples"
        )


def _check_evaluation_during_training(config: Config) -> None:
    """train.eval_samples must suit the evaluate settings it is scored with; keep_best needs
    the evaluations it chooses among."""
    train, evaluate = config.train, config.evaluate
    if train.keep_best is not None and train.eval_every is None:
        raise ConfigError(
            f"train.keep_best ({train.keep_best!r}) chooses among the evaluations during "
            "training, but train.eval_every is null: set eval_every or keep_best to null"
        )
    if train.eval_every is None:
        return
    if evaluate.kid_subset_size > train.eval_samples:
        raise ConfigError(
            f"evaluate.kid_subset_size ({evaluate.kid_subset_size}) must be at most "
            f"train.eval_samples ({train.eval_samples}), which are scored with it during "
            "training: raise eval_samples or lower kid_subset_size"
        )
    if evaluate.pr_k >= train.eval_samples:
        raise ConfigError(
            f"evaluate.pr_k ({evaluate.pr_k}) must be below train.eval_samples "
            f"({train.eval_samples}): raise eval_samples or lower pr_k"
        )


def _check_scales(scales: tuple[int, ...], image_size: int) -> None:
    """Distinct factors, finest first, each leaving D an image of at least 16 px."""
    if list(scales) != sorted(set(scales)):
        raise ConfigError(
            f"model.discriminator_scales ({list(scales)}) must list each factor once, "
            "smallest first (e.g. [1, 2])"
        )
    if image_size // scales[-1] < MIN_DISCRIMINATOR_INPUT:
        raise ConfigError(
            f"model.discriminator_scales: {scales[-1]} leaves the discriminator a "
            f"{image_size // scales[-1]}px image at data.image_size {image_size}; the "
            f"coarsest scale must leave at least {MIN_DISCRIMINATOR_INPUT}px"
        )


def _check_discriminator_batches(model: ModelConfig, train: TrainConfig) -> None:
    """Packs and groups of D's batch that fill it: ``pack · minibatch_stddev`` divides it."""
    if train.batch_size % model.pack:
        raise ConfigError(
            f"model.pack ({model.pack}) must divide train.batch_size ({train.batch_size}): "
            "D judges that many images at once"
        )
    group = model.minibatch_stddev
    if group is not None and (train.batch_size // model.pack) % group:
        raise ConfigError(
            f"model.minibatch_stddev ({group}) must divide the {train.batch_size // model.pack} "
            f"inputs D gets per batch (train.batch_size {train.batch_size} / model.pack "
            f"{model.pack}): D takes the spread over groups of that many"
        )
    if model.pack > 1 and model.conditional:
        raise ConfigError(
            f"model.pack ({model.pack}) does not combine with model.conditional (the "
            "projection D judges each image against its own attributes): set model.pack to 1 "
            "or model.conditional to false"
        )


def _check_resnet(config: Config) -> None:
    """The residual networks' own limits."""
    model, image_size = config.model, config.data.image_size
    reference_only = {
        "model.kernel_size": (model.kernel_size, ModelConfig.kernel_size, "3x3 and 1x1 convs"),
        "model.leaky_relu_slope": (model.leaky_relu_slope, ModelConfig.leaky_relu_slope, "ReLU"),
        "model.discriminator_scales": (list(model.discriminator_scales), [1], "one scale"),
        "train.progressive": (config.train.progressive, None, "no growing"),
        "model.d_depth": (model.d_depth, ModelConfig.d_depth, "its residual blocks"),
    }
    for key, (value, default, resnet_has) in reference_only.items():
        if value != default:
            raise ConfigError(
                f"{key} ({value}) is for model.architecture reference; resnet has {resnet_has} "
                f"(the authors' networks): set {key} to {default} or model.architecture to "
                "reference"
            )
    for resolution in model.attention_resolutions if model.attention else ():
        channels = {
            "model.g_width": shapes.resnet_generator_channels(
                model.g_width, image_size, resolution
            ),
            "model.d_width": shapes.resnet_discriminator_channels(
                model.d_width, image_size, resolution
            ),
        }
        for key, count in channels.items():
            if count % shapes.ATTENTION_REDUCTION:
                raise ConfigError(
                    f"{key}: the {resolution}x{resolution} map it makes has {count} channels, "
                    "which self-attention cannot divide by 8 (its query and key width): "
                    f"choose a {key} that makes it a multiple of 8"
                )


def _check_progressive(config: Config) -> None:
    """Resolutions that double up to the image size, and phases that fit the budget."""
    model, train, image_size = config.model, config.train, config.data.image_size
    resolutions = list(train.progressive)
    doubling = [resolutions[0] * 2**i for i in range(len(resolutions))]
    if resolutions != doubling or resolutions[-1] != image_size:
        raise ConfigError(
            f"train.progressive ({resolutions}) must double from one resolution to the next "
            f"and end at data.image_size ({image_size}), e.g. [16, 32, {image_size}]"
        )
    if resolutions[0] < MIN_DISCRIMINATOR_INPUT or len(resolutions) < 2:
        raise ConfigError(
            f"train.progressive ({resolutions}) must start at {MIN_DISCRIMINATOR_INPUT}px or "
            "more (D ends at an 8x8 map) and list at least two resolutions"
        )
    if len(train.progressive_steps) != len(resolutions) - 1:
        raise ConfigError(
            f"train.progressive_steps ({list(train.progressive_steps)}) must give one budget "
            f"per resolution before the last: {len(resolutions) - 1} values for "
            f"train.progressive {resolutions} (the last trains for the rest of train.steps)"
        )
    for resolution, steps in zip(resolutions[1:-1], train.progressive_steps[1:], strict=True):
        if train.progressive_fade > steps:
            raise ConfigError(
                f"train.progressive_fade ({train.progressive_fade}) is longer than the "
                f"{resolution}px phase (train.progressive_steps: {steps} updates)"
            )
    if train.epochs is None:
        check_progressive_budget(train, train.steps)
    others = {
        "model.discriminator_scales": model.discriminator_scales != (1,),
        "train.perceptual_weight": train.perceptual_weight > 0,
    }
    for key, clashes in others.items():
        if clashes:
            raise ConfigError(
                f"train.progressive does not combine with {key} (the growing D is a single "
                f"reference D, and VGG19 features need the full-size image): set {key} back "
                "or train.progressive to null"
            )


def check_progressive_budget(train: TrainConfig, total_steps: int) -> None:
    """The last phase needs its fade-in and at least one update at the full size after it.

    ``total_steps`` is ``train.steps``, or what ``train.epochs`` comes to once the size of
    the training split is known.
    """
    before_last = sum(train.progressive_steps)
    last = total_steps - before_last
    if last <= train.progressive_fade:
        raise ConfigError(
            f"train.progressive_steps ({list(train.progressive_steps)}, {before_last} updates) "
            f"leave {max(last, 0)} of the {total_steps} updates of the budget to the last "
            f"resolution, which needs its fade-in (train.progressive_fade: "
            f"{train.progressive_fade}) and one update more: lower progressive_steps or raise "
            "train.steps"
        )


def _check_conditioned(
    condition_on: tuple[str, ...], generate: GenerateConfig, evaluate: EvaluateConfig
) -> None:
    """The attributes that generate and evaluate name must be among those conditioned on."""
    repeated = sorted({name for name in condition_on if condition_on.count(name) > 1})
    if repeated:
        raise ConfigError(
            f"model.condition_on ({list(condition_on)}) names {repeated[0]!r} twice: "
            "list each attribute once"
        )
    for name in generate.attributes or {}:
        if name not in condition_on:
            raise ConfigError(
                f"generate.attributes names {name!r}, which model.condition_on "
                f"({list(condition_on)}) does not list: fix the name or add it to condition_on"
            )
    chosen = evaluate.intra_fid_attribute
    if chosen is not None and chosen not in condition_on:
        raise ConfigError(
            f"evaluate.intra_fid_attribute ({chosen!r}) must be one of model.condition_on "
            f"({list(condition_on)}): fix the name or add it to condition_on"
        )


def xla_cannot_be_deterministic(train: TrainConfig) -> bool:
    """Whether this training needs a deterministic gradient XLA does not have: that of VGG19's
    max-pools, under the perceptual loss past its first block."""
    past_block1 = set(train.perceptual_layers) - set(VGG19_BLOCK1)
    return train.perceptual_weight > 0 and train.deterministic and bool(past_block1)


def _build(cls: type, raw: Any, prefix: str, require_all: bool = False) -> Any:
    where = prefix.rstrip(".") or "params"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping, got {_show(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(str(key) for key in raw if key not in fields)
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]}; valid keys of {where}: {', '.join(fields)}"
        )
    if require_all:
        missing = [name for name in fields if name not in raw]
        if missing:
            raise ConfigError(f"missing section {missing[0]} in {where}")
    values = {}
    for name, value in raw.items():
        key, hint = f"{prefix}{name}", hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, prefix=f"{key}.")
        else:
            values[name] = _check(key, value, hint, fields[name].metadata)
    return cls(**values)


def _check(key: str, value: Any, hint: Any, rules: typing.Mapping[str, Any]) -> Any:
    """Return ``value`` converted to ``hint`` or raise a ConfigError naming ``key``."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        if value is None:
            return None
        (hint,) = [arg for arg in args if arg is not type(None)]
    elif isinstance(hint, types.UnionType):  # a switch with a word for its third setting
        if type(value) not in args:
            raise ConfigError(f"{key} must be one of {_options(rules)}, got {_show(value)}")
        hint = type(value)
    if typing.get_origin(hint) is dict:
        if not isinstance(value, dict) or not value:
            raise ConfigError(f"{key} must be a non-empty mapping, got {_show(value)}")
        for name in value:
            if not isinstance(name, str) or not name:
                raise ConfigError(
                    f"{key}: every name must be a non-empty string, got {_show(name)}"
                )
        item_type = typing.get_args(hint)[1]
        return {
            name: _check(f"{key}.{name}", item, item_type, rules) for name, item in value.items()
        }
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list | tuple) or not value:
            raise ConfigError(f"{key} must be a non-empty list, got {_show(value)}")
        item_types = typing.get_args(hint)
        if item_types[-1] is not Ellipsis and len(value) != len(item_types):
            raise ConfigError(
                f"{key} must be a list of {len(item_types)} values, got {_show(value)}"
            )
        return tuple(
            _check(f"{key}[{i}]", item, item_types[0], rules) for i, item in enumerate(value)
        )
    value = _check_type(key, value, hint, rules)
    _check_range(key, value, rules)
    return value


def _check_type(key: str, value: Any, hint: Any, rules: typing.Mapping[str, Any]) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {_show(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            kind = "a positive integer" if rules.get("positive") else "an integer"
            raise ConfigError(f"{key} must be {kind}, got {_show(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {_show(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {_show(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {_show(value)}")
        return value
    raise TypeError(f"config field {key} has an unsupported type {hint!r}")


def _check_range(key: str, value: Any, rules: typing.Mapping[str, Any]) -> None:
    if "choices" in rules and value not in rules["choices"]:
        raise ConfigError(f"{key} must be one of {_options(rules)}, got {_show(value)}")
    if rules.get("positive") and value <= 0:
        kind = "a positive integer" if isinstance(value, int) else "a positive number"
        raise ConfigError(f"{key} must be {kind}, got {_show(value)}")
    if "min" in rules and value < rules["min"]:
        raise ConfigError(f"{key} must be at least {rules['min']}, got {_show(value)}")
    if "max" in rules and value > rules["max"]:
        raise ConfigError(f"{key} must be at most {rules['max']}, got {_show(value)}")
    if rules.get("name") and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        raise ConfigError(
            f"{key} must be a name of letters, digits, '_', '.' and '-', got {_show(value)}"
        )
    if rules.get("power_of_two") and (value < 1 or value & (value - 1)):
        raise ConfigError(f"{key} must be a power of two, got {_show(value)}")


def _options(rules: typing.Mapping[str, Any]) -> str:
    """The choices as params.yaml spells them (true, not True)."""
    choices = rules["choices"]
    return ", ".join(
        str(choice).lower() if isinstance(choice, bool) else str(choice) for choice in choices
    )


def _show(value: Any) -> str:
    return (
        f"{value!r} ({type(value).__name__})" if not isinstance(value, int | float) else repr(value)
    )


def flatten(config: Config) -> dict[str, Any]:
    """``{"train.batch_size": 64, ...}``: every key with its value, for logging."""
    flat = {}
    for section in dataclasses.fields(config):
        values = dataclasses.asdict(getattr(config, section.name))
        flat.update({f"{section.name}.{key}": value for key, value in values.items()})
    return flat
