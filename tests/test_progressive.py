"""Progressive growing: the schedule, the stage models, their fade-ins, training and resume."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan.config import (
    Config,
    ConfigError,
    TrainConfig,
    check_progressive_budget,
    config_from_dict,
)
from sagan.model.networks import build_discriminator, build_generator
from sagan.model.progressive import Stage, grow_discriminator, grow_generator, stages
from sagan.sampling.grids import upsample_nearest
from sagan.training.growth import GrowthSchedule, at_stage_size, fade_alpha
from sagan.training.session import save_outputs
from sagan.training.settings import resolve_settings
from sagan.training.step import GANTrainer
from tests.helpers import (
    IMAGE_SIZE,
    conditioning,
    fingerprint_of,
    images,
    tiny_config,
    tiny_model,
    train_tiny,
)

# 32px: 16px for 3 updates, then 32px fading in over updates 4 and 5, alone from update 6.
GROWTH = {"progressive": (16, 32), "progressive_steps": (3,), "progressive_fade": 2}


def growing_config(conditional: bool = False, **train_overrides) -> Config:
    return tiny_config(conditional, **{**GROWTH, "steps": 7, **train_overrides})


def test_the_schedule_gives_each_update_its_stage_and_alpha():
    schedule = GrowthSchedule((16, 32, 64), (3, 4), 2)
    table = [
        (update, schedule.stage(update).resolution, schedule.stage(update).fading)
        for update in range(1, 11)
    ]
    assert table == [
        (1, 16, False),
        (2, 16, False),
        (3, 16, False),
        (4, 32, True),
        (5, 32, True),
        (6, 32, False),
        (7, 32, False),
        (8, 64, True),
        (9, 64, True),
        (10, 64, False),
    ]
    assert [schedule.alpha(u) for u in (3, 4, 5, 6, 8, 9, 10)] == [
        1,
        1 / 3,
        2 / 3,
        1,
        1 / 3,
        2 / 3,
        1,
    ]
    assert [u for u in range(1, 12) if schedule.starts_phase(u)] == [4, 8]
    assert schedule.stage(10_000) == Stage(64, False)  # past the budget: the last stage
    assert [s.name for s in stages((16, 32), 0)] == ["at_16", "at_32"]  # no fade-in at 0


def _params(**train) -> dict:
    return {
        "data": {"image_size": 64},
        "model": {},
        "train": {"steps": 100, "ema_start": 10, "progressive_fade": 5, **train},
        **{section: {} for section in ("generate", "encoder", "evaluate", "attention", "mlflow")},
    }


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"progressive": [16, 64]}, r"train.progressive \(\[16, 64\]\) must double .* end at "),
        ({"progressive": [16, 32]}, r"must double from one resolution to the next and end at"),
        ({"progressive": [8, 16, 32, 64]}, "must start at 16px or more"),
        ({"progressive": [64]}, "list at least two resolutions"),
        ({"progressive": [16, 32, 64], "progressive_steps": [10]}, "one budget per resolution"),
        (
            {"progressive": [16, 32, 64], "progressive_steps": [10, 5], "progressive_fade": 6},
            r"train.progressive_fade \(6\) is longer than the 32px phase",
        ),
        (
            {"progressive": [16, 32, 64], "progressive_steps": [50, 40], "progressive_fade": 10},
            r"leave 10 of the 100 updates .* fade-in \(train.progressive_fade: 10\)",
        ),
        (
            {"progressive": [32, 64], "progressive_steps": [100], "progressive_fade": 0},
            "leave 0 of the 100 updates",
        ),
        (
            {"progressive": [32, 64], "progressive_steps": [10], "perceptual_weight": 1.0},
            "train.progressive does not combine with train.perceptual_weight",
        ),
    ],
)
def test_impossible_growth_settings_are_refused_naming_the_key(train, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_params(**train))


def test_a_multi_scale_discriminator_is_refused_with_growth():
    params = _params(progressive=[32, 64], progressive_steps=[10])
    params["model"] = {"discriminator_scales": [1, 2]}
    with pytest.raises(ConfigError, match="does not combine with model.discriminator_scales"):
        config_from_dict(params)


def test_the_epochs_budget_is_checked_once_it_is_known():
    train = TrainConfig(
        epochs=1.0, progressive=(32, 64), progressive_steps=(10,), progressive_fade=1
    )
    config_from_dict(_params(epochs=1.0, progressive=[32, 64], progressive_steps=[10]))
    check_progressive_budget(train, 12)  # two updates at 64px after a 1-update fade-in
    with pytest.raises(ConfigError, match="leave 1 of the 11 updates"):
        check_progressive_budget(train, 11)


def test_growth_has_its_own_fingerprint_and_its_keys_count_only_while_on():
    plain = tiny_config()
    unused_keys = tiny_config(progressive_steps=(7,), progressive_fade=9)
    assert fingerprint_of(unused_keys) == fingerprint_of(plain)
    assert fingerprint_of(growing_config()) != fingerprint_of(plain)
    assert fingerprint_of(growing_config(progressive_fade=1)) != fingerprint_of(growing_config())


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
def test_the_last_stage_models_are_the_ordinary_networks(conditional, tmp_path):
    model, attribute_dim = tiny_model(conditional), 5 if conditional else None
    grown_g = grow_generator(model, (16, 32), 2, attribute_dim)
    grown_d = grow_discriminator(model, (16, 32), 2, attribute_dim)
    last = Stage(32, False)
    for grown, ordinary in (
        (grown_g, build_generator(model, 32, attribute_dim)),
        (grown_d, build_discriminator(model, 32, attribute_dim)),
    ):
        final = grown.models[last]
        assert [(w.path, w.shape) for w in final.weights] == [
            (w.path, w.shape) for w in ordinary.weights
        ]
        assert [i.name for i in final.inputs] == [i.name for i in ordinary.inputs]
        final.save(tmp_path / f"{final.name}.keras")
        loaded = keras.models.load_model(tmp_path / f"{final.name}.keras")
        assert type(loaded) is type(ordinary) and len(loaded.weights) == len(ordinary.weights)
    # Heads and fade-ins live only in the earlier stages.
    names = {layer.name for layer in grown_g.models[last].layers}
    assert not names & {"to_rgb_16", "images_16", "fade_32"}
    everything = {layer.name for layer in grown_g.everything.layers}
    assert {"to_rgb_16", "images_16", "fade_32"} <= everything


def test_a_fade_in_blends_the_old_and_the_new_path():
    model = tiny_model()
    grown_g, grown_d = grow_generator(model, (16, 32), 2), grow_discriminator(model, (16, 32), 2)
    z = np.random.default_rng(0).normal(size=(4, model.latent_dim)).astype("float32")
    x = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    pooled = tf.nn.avg_pool2d(x, 2, 2, "VALID")
    fade_g, fade_d = grown_g.models[Stage(32, True)], grown_d.models[Stage(32, True)]
    small = grown_g.models[Stage(16, False)](z, training=False)
    for alpha in (0.0, 0.25, 1.0):
        grown_g.fades[32].alpha.assign(alpha)
        grown_d.fades[32].alpha.assign(alpha)
        new = grown_g.models[Stage(32, False)](z, training=False)
        expected = (1 - alpha) * upsample_nearest(np.asarray(small), 32) + alpha * np.asarray(new)
        np.testing.assert_allclose(fade_g(z, training=False), expected, atol=1e-6)
        if alpha in (0.0, 1.0):  # D's blend is of inner maps: its ends are the two stages' D
            other = grown_d.models[Stage(16, False)](pooled) if alpha == 0.0 else None
            other = grown_d.models[Stage(32, False)](x) if alpha == 1.0 else other
            np.testing.assert_allclose(fade_d(x), other, rtol=1e-5, atol=1e-6)


def test_real_images_are_pooled_to_the_stage_and_blended_during_a_fade_in():
    schedule = GrowthSchedule.from_config(growing_config().train)
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)), tf.float32)
    pooled = x.numpy().reshape(2, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    first = schedule.stage(1)
    np.testing.assert_allclose(at_stage_size(x, IMAGE_SIZE, first, None), pooled, atol=1e-6)
    # Update 5, after 4 done: the graph's α is the schedule's, 2/3.
    alpha = fade_alpha(tf.constant(4, tf.int64), schedule.phase_start(5), schedule.fade)
    assert float(alpha) == pytest.approx(schedule.alpha(5)) == pytest.approx(2 / 3)
    blended = upsample_nearest(pooled, 32) / 3 + 2 / 3 * x.numpy()
    faded = at_stage_size(x, IMAGE_SIZE, schedule.stage(5), alpha)
    np.testing.assert_allclose(faded, blended, atol=1e-6)


def test_a_grown_run_trains_logs_its_stages_and_saves_ordinary_models(tmp_path):
    config = growing_config(log_every=1, sample_every=3)
    trainer, metrics = train_tiny(config, tmp_path)
    assert trainer.stage == Stage(32, False) and metrics["steps"] == 7
    rows = (tmp_path / "plots" / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    stage_of = [
        (row.split(",")[header.index("resolution")], row.split(",")[header.index("fade_alpha")])
        for row in rows[1:]
    ]
    third, two_thirds = str(1 / 3), str(2 / 3)
    assert stage_of == [
        ("16", "1.0"),
        ("16", "1.0"),
        ("16", "1.0"),
        ("32", third),
        ("32", two_thirds),
        ("32", "1.0"),
        ("32", "1.0"),
    ]
    grids = sorted((tmp_path / "plots" / "samples").iterdir())
    assert [p.name for p in grids] == ["step_000003.png", "step_000006.png", "step_000007.png"]
    for grid in grids:  # 8 × 8 faces at the full size, also from the 16px stage
        assert keras.utils.load_img(grid).size == (8 * IMAGE_SIZE, 8 * IMAGE_SIZE)
    early = np.load(tmp_path / "plots" / "attention" / "step_000003.npz")
    assert early["image"].shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert {"g_attention_16", "d_attention_16"} <= set(early.files)

    save_outputs(trainer, metrics, tmp_path / "models", tmp_path / "train.json")
    for name, ordinary in (
        ("generator.keras", build_generator(config.model, IMAGE_SIZE)),
        ("discriminator.keras", build_discriminator(config.model, IMAGE_SIZE)),
        ("generator_ema.keras", build_generator(config.model, IMAGE_SIZE)),
    ):
        loaded = keras.models.load_model(tmp_path / "models" / name)
        assert _layer_weights(loaded) == _layer_weights(ordinary), name
        assert loaded.outputs[0].shape == ordinary.outputs[0].shape


def _layer_weights(model: keras.Model) -> list[tuple[str, list[tuple[int, ...]]]]:
    """Each layer that has weights, with their shapes, in order."""
    return [
        (layer.name, [tuple(w.shape) for w in layer.weights])
        for layer in model.layers
        if layer.weights
    ]


def test_each_phase_starts_with_fresh_adam_states():
    config = growing_config()
    trainer = GANTrainer(resolve_settings(config))
    iterator = iter(images())
    for update in range(1, 5):
        trainer.begin_update(update, 4)
        trainer.train_step(iterator)
    # Updates 1–3 at 16px, then the reset: update 4 is the new phase's first Adam step.
    assert int(trainer.g_optimizer.iterations.numpy()) == 1
    assert int(trainer.d_optimizer.iterations.numpy()) == 1
    head = trainer._growing["generator"].everything.get_layer("to_rgb_16")
    velocity = trainer.g_optimizer._velocities[trainer.g_optimizer._get_variable_index(head.kernel)]
    assert np.count_nonzero(velocity.numpy()) > 0  # the fade's old path still trains


def test_resume_across_a_phase_is_bitwise_identical(tmp_path):
    """Stopped after update 3 (the last at 16px), again after 4 (mid-fade), then run to the
    end, each time by a new trainer that has only the checkpoint to go on."""
    tf.config.experimental.enable_op_determinism()
    config = growing_config(checkpoint_every=1, deterministic=True, ema_start=2)
    straight, _ = train_tiny(config, tmp_path / "straight")
    for stop in (3, 4, config.train.steps):
        part = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=stop))
        resumed, _ = train_tiny(part, tmp_path / "stopped")
    for name in ("generator", "discriminator", "ema_generator"):
        a, b = straight.checkpointed()[name], resumed.checkpointed()[name]
        for x, y in zip(a.weights, b.weights, strict=True):
            np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=f"{name} {x.path}")


@pytest.mark.parametrize(
    "conditional, options",
    [
        (True, {"loss": "wasserstein", "gp_weight": 10.0, "n_critic": 2, "progressive_fade": 0}),
        (False, {"loss": "bce", "mixed_precision": "mixed_float16", "update": "alternating"}),
        (
            True,
            {
                "mixed_precision": "mixed_bfloat16",
                "augment": ("translation", "cutout"),
                "progressive_fade": 0,
            },
        ),
    ],
    ids=["conditional-wasserstein-gp", "bce-float16-alternating", "conditional-bfloat16-augment"],
)
def test_growth_trains_with_every_loss_precision_and_update(tmp_path, conditional, options):
    short = {"steps": 3, "progressive_steps": (1,), "progressive_fade": 1}  # one update a stage
    config = growing_config(conditional, **{**short, **options})
    trainer, metrics = train_tiny(config, tmp_path)
    assert all(np.isfinite(value) for value in metrics.values()), options
    assert trainer.generator.outputs[0].shape[1] == IMAGE_SIZE, options
    if conditional:
        assert [i.name for i in trainer.generator.inputs] == ["z", "attributes"]


def test_the_conditional_stages_take_their_attributes():
    config = growing_config(True)
    trainer = GANTrainer(resolve_settings(config), conditioning=conditioning())
    assert [i.name for i in trainer.discriminator.inputs] == ["images_at_16", "attributes"]
    assert trainer.discriminator.inputs[0].shape[1:] == (16, 16, 3)
