"""The residual SAGAN (model.architecture: resnet): layout, parameter counts, refusals, training."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from sagan.config import Config, ConfigError, ModelConfig, config_from_dict
from sagan.model.layers import ConditionalBatchNormalization
from sagan.model.networks import build_discriminator, build_generator
from sagan.model.saved import load_model
from sagan.training.checkpoints import CheckpointError, Checkpoints, run_identity
from sagan.training.settings import resolve_settings
from sagan.training.step import GANTrainer
from tests.helpers import REPO, conditioning, fingerprint_of, images, labelled_images, tiny_config

# Tiny residual networks: 8 channels on D's 16×16 map at 64 px (4·min(16, 64/32)).
# The authors' networks: their D judges one image at a time (model.pack 1).
TINY = ModelConfig(
    architecture="resnet", latent_dim=16, g_width=4, d_width=4, g_spectral_norm=True, pack=1
)


def _trainable(model: keras.Model) -> int:
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def _layers_of(model: keras.Model, kind: type) -> list:
    return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.mark.parametrize("image_size", [64, 128])
@pytest.mark.parametrize("attribute_dim", [None, 5], ids=["unconditional", "conditional"])
def test_resnet_networks_have_the_authors_layout(image_size, attribute_dim):
    model = dataclasses.replace(TINY, conditional=attribute_dim is not None)
    generator = build_generator(model, image_size, attribute_dim)
    discriminator = build_discriminator(model, image_size, attribute_dim)
    z = np.random.default_rng(0).standard_normal((3, 16)).astype("float32")
    attributes = np.eye(5, dtype="float32")[[0, 2, 4]]
    inputs = (lambda x: x) if attribute_dim is None else (lambda x: [x, attributes])
    images = generator(inputs(z)).numpy()
    assert images.shape == (3, image_size, image_size, 3)
    assert np.abs(images).max() <= 1.0
    assert discriminator(inputs(images)).shape == (3, 1)

    # G: 4×4×16w, then one up-block per doubling, each map w·min(16, S/r) channels wide
    assert generator.get_layer("sn_project").layer.units == 4 * 4 * 4 * 16
    resolutions = [2**k for k in range(3, int(np.log2(image_size)) + 1)]
    for r in resolutions:
        assert generator.get_layer(f"sn_up{r}_conv2").layer.filters == 4 * min(16, image_size // r)
        assert generator.get_layer(f"sn_up{r}_shortcut").layer.kernel_size == (1, 1)
    # D: a block per halving down to 4×4 (w·min(16, S/2r)), then one that keeps 4×4 at 16w
    for r in resolutions[:-1][::-1] + [4]:
        assert discriminator.get_layer(f"sn_down{r}_conv2").layer.filters == 4 * min(
            16, image_size // (2 * r)
        )
    assert discriminator.get_layer("sn_keep4_conv2").layer.filters == 4 * 16
    assert discriminator.get_layer("sum_pool").output.shape == (None, 4 * 16)
    # self-attention after the block that makes the 16×16 map, in both networks
    assert generator.get_layer("attention_16").output.shape == (None, 16, 16, 4 * image_size // 16)
    assert discriminator.get_layer("attention_16").output.shape == (
        None,
        16,
        16,
        4 * image_size // 32,
    )
    # SN on every conv and linear layer (G's too: model.g_spectral_norm, the paper's choice)
    for network in (generator, discriminator):
        assert not _layers_of(network, keras.layers.Conv2D)
        assert not _layers_of(network, keras.layers.Dense)
    # two BNs per up-block (conditional in a conditional G), and a plain one before to_rgb
    block_bns = 2 * len(resolutions)
    plain_bns = _layers_of(generator, keras.layers.BatchNormalization)
    conditional_bns = _layers_of(generator, ConditionalBatchNormalization)
    assert len(plain_bns) == 1 + (0 if attribute_dim else block_bns)
    assert len(conditional_bns) == (block_bns if attribute_dim else 0)
    assert plain_bns[-1].name == "output_bn"


def _authors_counts(gf: int, df: int, classes: int, z_dim: int = 128) -> tuple[int, int]:
    """Trainable parameters of the authors' 128-px G and D (brain-research/self-attention-gan,
    generator.py and discriminator.py), derived from their code: every snconv2d and snlinear
    has a bias; the non-local block's four 1×1 convs (θ, φ to C/8, g to C/2, o back to C) have
    none, plus the scalar σ; a conditional BN has a γ and a β row per class (no bias), a plain
    BN (classes 0 here) a γ and a β per channel; the projection embedding has no bias."""

    def conv(k, c_in, c_out):
        return k * k * c_in * c_out + c_out

    def attention(c):
        return 2 * c * (c // 8) + c * (c // 2) + (c // 2) * c + 1

    def bn(c):
        return 2 * c * (classes or 1)

    widths = [16 * gf, 16 * gf, 8 * gf, 4 * gf, 2 * gf, gf]
    g = z_dim * 4 * 4 * 16 * gf + 4 * 4 * 16 * gf
    for c_in, c_out in zip(widths, widths[1:], strict=False):
        g += bn(c_in) + conv(3, c_in, c_out) + bn(c_out) + conv(3, c_out, c_out)
        g += conv(1, c_in, c_out)
    g += attention(4 * gf) + 2 * gf + conv(3, gf, 3)  # at 32×32; then a plain BN and to RGB

    d = conv(3, 3, df) + conv(3, df, df) + conv(1, 3, df)  # the optimized block
    widths = [df, 2 * df, 4 * df, 8 * df, 16 * df]
    for c_in, c_out in zip(widths, widths[1:], strict=False):
        d += conv(3, c_in, c_out) + conv(3, c_out, c_out) + conv(1, c_in, c_out)
    d += 2 * conv(3, 16 * df, 16 * df)  # the block that keeps 4×4: identity shortcut
    d += attention(2 * df) + 16 * df + 1 + classes * 16 * df  # at 32×32; the logit; embedding
    return g, d


def test_the_oracle_gives_the_counts_quoted_in_the_readme():
    assert _authors_counts(64, 64, 0) == (32_232_708, 38_439_618)
    assert _authors_counts(64, 64, 1000) == (42_078_852, 39_463_618)


@pytest.mark.parametrize("classes", [0, 5])
def test_parameter_counts_match_the_authors_networks_at_128_px(classes):
    """Ours = theirs + the biases of our 1×1 attention convs (+ the per-channel bias of our
    conditional BN's γ and β maps), at 1/8 of the authors' widths."""
    model = ModelConfig(
        architecture="resnet",
        g_width=8,
        d_width=8,
        g_spectral_norm=True,
        attention_variant="official",
        attention_resolutions=(32,),
        conditional=bool(classes),
        pack=1,
    )
    attribute_dim = classes or None
    generator = build_generator(model, 128, attribute_dim)
    discriminator = build_discriminator(model, 128, attribute_dim)
    theirs_g, theirs_d = _authors_counts(8, 8, classes)

    def attention_biases(c):
        return c // 8 + c // 8 + c // 2 + c

    g_bn_channels = sum([128, 128, 128, 64, 64, 32, 32, 16, 16, 8])  # each block's two BNs
    extra_g = attention_biases(32) + (2 * g_bn_channels if classes else 0)
    assert _trainable(generator) == theirs_g + extra_g
    assert _trainable(discriminator) == theirs_d + attention_biases(16)


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"model": {"attention_resolutions": [64]}}, "model.attention_resolutions"),
        ({"model": {"attention_resolutions": [4]}}, "model.attention_resolutions"),
        ({"model": {"g_width": 3}}, "model.g_width"),
        ({"model": {"d_width": 3, "attention_resolutions": [8]}}, "model.d_width"),
        ({"model": {"kernel_size": 3}}, "model.kernel_size"),
        ({"model": {"leaky_relu_slope": 0.1}}, "model.leaky_relu_slope"),
        ({"model": {"discriminator_scales": [1, 2]}}, "model.discriminator_scales"),
        ({"train": {"progressive": [32, 64]}}, "train.progressive"),
    ],
)
def test_combinations_the_resnet_cannot_build_are_refused_naming_the_key(overrides, key):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["model"]["architecture"] = "resnet"
    for section, values in overrides.items():
        raw[section] |= values
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as error:
        config_from_dict(raw)
    assert "\n" not in str(error.value)


def test_attention_at_8_is_a_resnet_map_only():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["model"]["attention_resolutions"] = [8]
    with pytest.raises(ConfigError, match="choose from \\[16, 32\\]"):
        config_from_dict(raw)
    raw["model"]["architecture"] = "resnet"
    assert config_from_dict(raw).model.attention_resolutions == (8,)


def test_the_default_run_identity_has_no_architecture_key():
    assert "architecture" not in run_identity(resolve_settings(Config()))["model"]
    resnet = Config(model=ModelConfig(architecture="resnet"))
    assert run_identity(resolve_settings(resnet))["model"]["architecture"] == "resnet"
    assert fingerprint_of(resnet) != fingerprint_of(Config())


def _resnet_config(image_size: int, conditional: bool = False, **train) -> Config:
    """TINY's networks at ``image_size``, widened to keep 8 channels on D's 16×16 map."""
    config = tiny_config(conditional, **train)
    data = dataclasses.replace(config.data, image_size=image_size)
    width = TINY.d_width * 64 // image_size
    model = dataclasses.replace(TINY, conditional=conditional, g_width=width, d_width=width)
    return dataclasses.replace(config, data=data, model=model)


def _trainer(config: Config) -> tuple[GANTrainer, object]:
    """A resnet trainer of ``config`` and an iterator over random images of its size."""
    size, conditional = config.data.image_size, config.model.conditional
    attributes = conditioning() if conditional else None
    trainer = GANTrainer(resolve_settings(config), conditioning=attributes)
    return trainer, iter((labelled_images if conditional else images)(image_size=size))


def _train(trainer: GANTrainer, iterator, updates) -> dict[str, float]:
    for update in updates:
        trainer.begin_update(update, trainer.settings.config.train.steps)
        metrics = {key: float(value) for key, value in trainer.train_step(iterator).items()}
        assert all(np.isfinite(value) for value in metrics.values()), (update, metrics)
    return metrics


def _variables(state) -> list:
    """The variables of a checkpointed model or optimizer, or the variable itself."""
    if isinstance(state, keras.Model | keras.optimizers.Optimizer):
        return state.variables
    return [state]


def _samples(trainer: GANTrainer, count: int = 2) -> np.ndarray:
    """``count`` faces of the trainer's sampling generator (the EMA G when there is one)."""
    z = tf.random.normal((count, trainer.generator.inputs[0].shape[-1]))
    if trainer.conditioning is None:
        return trainer.sampling_generator()(z).numpy()
    codes = trainer.conditioning.encode(trainer.conditioning.draw(count, (0, 0)))
    return trainer.sampling_generator()([z, codes]).numpy()


@pytest.mark.parametrize(
    "image_size, conditional, options",
    [
        (
            32,
            True,
            {
                "mixed_precision": "mixed_bfloat16",
                "ema_decay": 0.9,
                "ema_start": 0,
                "loss": "wasserstein",
                "gp_weight": 10.0,
                "n_critic": 2,
            },
        ),
        (32, False, {"loss": "bce", "update": "alternating", "mixed_precision": "mixed_float16"}),
    ],
    ids=["32px-conditional-bfloat16-ema-wasserstein-gp", "32px-bce-float16-alternating"],
)
def test_resnet_resumes_exactly_and_samples(tmp_path, image_size, conditional, options):
    """One trainer takes updates 1 and 2, checkpoints, and takes 3 and 4; a new one restores
    the checkpoint and takes 3 and 4: G, D, the EMA G and both optimizers (float16's loss
    scale included) must agree bitwise, with two critic steps and the gradient penalty's
    mix in the first case. At 32 px, the smallest residual networks: 64 and 128 px differ
    only in their count of blocks (their layouts are checked above, and 128 px trains in the
    pipeline tier's test_the_residual_sagan_runs_at_128_px_as_a_dvc_experiment)."""
    tf.config.experimental.enable_op_determinism()
    config = _resnet_config(image_size, conditional, deterministic=True, **options)
    first, iterator = _trainer(config)
    _train(first, iterator, (1, 2))
    settings = resolve_settings(config)
    Checkpoints(tmp_path, settings, 1, **first.checkpointed(), iterator=iterator).save(2)
    _train(first, iterator, (3, 4))
    second, iterator = _trainer(config)
    checkpoints = Checkpoints(tmp_path, settings, 1, **second.checkpointed(), iterator=iterator)
    assert checkpoints.restore_latest()
    _train(second, iterator, (3, 4))

    states = first.checkpointed(), second.checkpointed()
    assert {"generator", "discriminator", "ema_generator"} <= set(states[0])
    for name, value in states[0].items():
        pairs = zip(_variables(value), _variables(states[1][name]), strict=True)
        for a, b in pairs:
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{name} {a.name}")
    faces = _samples(second)
    assert faces.shape == (2, image_size, image_size, 3) and np.isfinite(faces).all()


def test_a_conditional_resnet_generator_saves_and_loads(tmp_path):
    generator = build_generator(dataclasses.replace(TINY, conditional=True), 64, 5)
    generator.save(tmp_path / "generator.keras")
    loaded = load_model(tmp_path / "generator.keras")
    assert [i.name for i in loaded.inputs] == ["z", "attributes"]
    for a, b in zip(loaded.weights, generator.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_checkpoint_of_the_other_architecture_is_refused_naming_it(tmp_path):
    reference = tiny_config()
    resnet = dataclasses.replace(
        reference, model=dataclasses.replace(reference.model, architecture="resnet")
    )
    Checkpoints(tmp_path, resolve_settings(reference), 1, step=tf.Variable(3)).save(3)
    # someone moves the reference run's checkpoints into the resnet run's folder
    (tmp_path / fingerprint_of(reference)).rename(tmp_path / fingerprint_of(resnet))
    expected = "model.architecture: 'reference' there, 'resnet' now"
    with pytest.raises(CheckpointError, match=expected):
        Checkpoints(tmp_path, resolve_settings(resnet), 1, step=tf.Variable(0)).restore_latest()
