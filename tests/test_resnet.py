"""The residual SAGAN (model.architecture: resnet): layout, parameter counts, refusals, training."""

import dataclasses
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from sagan.config import Config, ConfigError, ModelConfig, config_from_dict
from sagan.model.layers import ConditionalBatchNormalization
from sagan.model.networks import build_discriminator, build_generator
from sagan.model.saved import load_model
from sagan.training.checkpoints import CheckpointError, Checkpoints, fingerprint, run_identity
from sagan.training.loop import TrainPaths, train
from sagan.training.step import GANTrainer
from tests.conftest import conditioning, images, labelled_images, tiny_config, train_tiny

REPO = Path(__file__).resolve().parents[1]
# Tiny residual networks: 8 channels on D's 16×16 map at 64 px (4·min(16, 64/32)).
TINY = ModelConfig(architecture="resnet", latent_dim=16, g_width=4, d_width=4, g_spectral_norm=True)


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
    assert "architecture" not in run_identity(Config())["model"]
    resnet = Config(model=ModelConfig(architecture="resnet"))
    assert run_identity(resnet)["model"]["architecture"] == "resnet"
    assert fingerprint(resnet) != fingerprint(Config())


def _resnet_config(image_size: int, conditional: bool = False, **train) -> Config:
    config = tiny_config(conditional, **train)
    data = dataclasses.replace(config.data, image_size=image_size)
    model = dataclasses.replace(TINY, conditional=conditional)
    return dataclasses.replace(config, data=data, model=model)


@pytest.mark.parametrize(
    "image_size, conditional", [(64, False), (128, True)], ids=["64px", "128px-conditional"]
)
def test_resnet_resumes_exactly_samples_and_saves(tmp_path, image_size, conditional):
    """One run stops after update 2, then goes on in memory to 4; a new trainer resumes a
    copy of its update-2 checkpoint to 4: every weight of every network must agree."""
    tf.config.experimental.enable_op_determinism()
    config = _resnet_config(
        image_size, conditional, steps=4, checkpoint_every=2, deterministic=True
    )
    half = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=2))
    straight, _ = train_tiny(half, tmp_path / "straight")
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    paths = TrainPaths(tmp_path / "straight" / "checkpoints", tmp_path / "straight" / "plots")
    dataset = (labelled_images if conditional else images)(image_size=image_size)
    metrics = train(config, straight, dataset, 64, paths)
    resumed, _ = train_tiny(config, tmp_path / "resumed")

    assert all(np.isfinite(value) for value in metrics.values())
    networks = straight.checkpointed(), resumed.checkpointed()
    models = [name for name, value in networks[0].items() if isinstance(value, keras.Model)]
    assert {"generator", "discriminator", "ema_generator"} <= set(models)
    for name in models:
        for a, b in zip(networks[0][name].weights, networks[1][name].weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{name} {a.path}")
    plots = tmp_path / "resumed" / "plots"
    assert (plots / "samples" / "step_000004.png").is_file()
    assert {"g_attention_16", "d_attention_16"} <= set(
        np.load(plots / "attention" / "step_000004.npz")
    )
    path = tmp_path / "generator.keras"
    resumed.sampling_generator().save(path)
    loaded = load_model(path)
    assert loaded.output_shape == (None, image_size, image_size, 3)
    assert [i.name for i in loaded.inputs] == ["z", "attributes"][: 1 + conditional]


@pytest.mark.parametrize(
    "image_size, conditional, options",
    [
        (64, True, {"loss": "wasserstein", "gp_weight": 10.0, "n_critic": 2}),
        (128, False, {"loss": "bce", "update": "alternating", "mixed_precision": "mixed_float16"}),
        (64, False, {"mixed_precision": "mixed_bfloat16", "ema_decay": 0.9, "ema_start": 0}),
    ],
    ids=["64px-conditional-wasserstein-gp", "128px-bce-float16", "64px-bfloat16-ema"],
)
def test_resnet_trains_with_every_loss_and_precision(image_size, conditional, options):
    config = _resnet_config(image_size, conditional, **options)
    attributes = conditioning() if conditional else None
    trainer = GANTrainer(config.model, config.train, image_size, conditioning=attributes)
    batches = (labelled_images if conditional else images)(image_size=image_size)
    iterator = iter(batches)
    for update in (1, 2):
        trainer.begin_update(update)
        metrics = {key: float(value) for key, value in trainer.train_step(iterator).items()}
        assert all(np.isfinite(value) for value in metrics.values()), (update, options)
    generator = trainer.sampling_generator()
    z = tf.random.normal((2, config.model.latent_dim))
    samples = generator(z if attributes is None else [z, attributes.encode([[0, 1], [1, 2]])])
    assert samples.shape == (2, image_size, image_size, 3)
    assert np.isfinite(samples.numpy()).all()


def test_a_checkpoint_of_the_other_architecture_is_refused_naming_it(tmp_path):
    reference = tiny_config()
    resnet = dataclasses.replace(
        reference, model=dataclasses.replace(reference.model, architecture="resnet")
    )
    Checkpoints(tmp_path, reference, 1, step=tf.Variable(3)).save(3)
    # someone moves the reference run's checkpoints into the resnet run's folder
    (tmp_path / fingerprint(reference)).rename(tmp_path / fingerprint(resnet))
    expected = "model.architecture: 'reference' there, 'resnet' now"
    with pytest.raises(CheckpointError, match=expected):
        Checkpoints(tmp_path, resnet, 1, step=tf.Variable(0)).restore_latest()
