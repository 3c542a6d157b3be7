"""The training loop: budget, EMA, checkpoints and exact resume, failures, distribution."""

import dataclasses
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from sagan.config import AUGMENTATIONS, Config
from sagan.tracking import NullTracker
from sagan.training import updates
from sagan.training.checkpoints import CheckpointError
from sagan.training.draws import MAX_CONDITIONAL_CRITICS, Draws
from sagan.training.loop import NonFiniteLossError, TrainPaths, total_steps, train
from sagan.training.settings import make_strategy, resolve_settings
from sagan.training.step import GANTrainer
from sagan.training.updates import Half
from tests.helpers import (
    REPO,
    conditioning,
    fingerprint_of,
    images,
    labelled_images,
    perceptual_options,
    tiny_config,
    train_tiny,
)


def run(config: Config, tmp_path: Path, dataset=None) -> tuple[GANTrainer, dict]:
    return train_tiny(config, tmp_path, dataset)


def test_training_runs_the_budget_and_writes_its_plots(trained_run):
    metrics, tmp_path = trained_run.metrics, trained_run.root
    assert trained_run.steps == 4 and metrics["steps"] == 4
    assert all(np.isfinite(value) for value in metrics.values())
    assert metrics["gamma_g_attention_16"] != 0.0  # γ left its initial 0
    assert {"d_loss", "g_loss", "d_real", "d_fake", "sigma_d_sn_logit"} <= set(metrics)
    history = (tmp_path / "plots" / "history.csv").read_text().splitlines()
    assert history[0].startswith("step,") and [row.split(",")[0] for row in history[1:]] == [
        "2",
        "4",
    ]
    assert sorted(p.name for p in (tmp_path / "plots" / "samples").iterdir()) == [
        "step_000002.png",
        "step_000004.png",
    ]


def test_epochs_win_over_steps():
    config = tiny_config(epochs=2.0, n_critic=2)
    # 2 passes over 100 images, 8 × 2 real images per generator update
    assert total_steps(config, 100) == 13
    assert total_steps(tiny_config(), 100) == 4


def test_ema_generator_averages_the_weights(tmp_path):
    config = tiny_config(ema_decay=0.5, ema_start=0, steps=1)
    trainer = GANTrainer(resolve_settings(config))
    before = trainer.ema_generator.get_layer("project").kernel.numpy()
    iterator = iter(images())
    trainer.train_step(iterator)
    after = trainer.generator.get_layer("project").kernel.numpy()
    np.testing.assert_allclose(
        trainer.ema_generator.get_layer("project").kernel.numpy(),
        0.5 * before + 0.5 * after,
        rtol=1e-6,
    )
    assert trainer.sampling_generator() is trainer.ema_generator


def _weights(trainer: GANTrainer) -> list[np.ndarray]:
    return [w.numpy() for w in trainer.generator.weights + trainer.discriminator.weights]


def _with_scales(config: Config, *scales: int) -> Config:
    model = dataclasses.replace(config.model, discriminator_scales=scales)
    return dataclasses.replace(config, model=model)


@pytest.mark.parametrize(
    "extensions", [None, "scales", "levers"], ids=["default", "multi-scale+perceptual", "levers"]
)
def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, extensions, request):
    tf.config.experimental.enable_op_determinism()
    config = tiny_config(steps=6, checkpoint_every=3, deterministic=True)
    if extensions == "scales":
        weights = request.getfixturevalue("vgg19_stand_in")
        config = _with_scales(
            tiny_config(steps=6, checkpoint_every=3, **perceptual_options(weights)), 1, 2
        )
    elif extensions == "levers":  # against dropped modes; R1 on updates 2, 4 and 6
        levers = dataclasses.replace(config.model, minibatch_stddev=2, pack=2, d_depth=1)
        train_config = dataclasses.replace(
            config.train, consistency_weight=10.0, r1_weight=1.0, r1_every=2
        )
        config = dataclasses.replace(config, model=levers, train=train_config)
    straight, _ = run(config, tmp_path / "straight")

    first_half = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=3))
    assert fingerprint_of(first_half) == fingerprint_of(config)  # the budget is not part of the run
    run(first_half, tmp_path / "resumed")
    resumed, _ = run(config, tmp_path / "resumed")  # new objects: only the checkpoint carries over

    for a, b in zip(_weights(straight), _weights(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    history = (tmp_path / "resumed" / "plots" / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["2", "3", "4", "6"]


def _rates_over(trainer: GANTrainer, iterator, updates: range, budget: int) -> list:
    """Train ``updates`` of ``budget``; the (G, D) learning rate each one used."""
    rates = []
    for update in updates:
        trainer.begin_update(update, budget)
        trainer.train_step(iterator)
        rates.append(
            (float(trainer.g_optimizer.learning_rate), float(trainer.d_optimizer.learning_rate))
        )
    return rates


def test_a_linear_schedule_falls_to_the_budgets_end_and_resumes_exactly(tmp_path):
    """In float16, whose loss-scale optimizer wraps Adam; stopped after update 2 of 4 and
    resumed by a new trainer from the checkpoint alone."""
    tf.config.experimental.enable_op_determinism()
    config = tiny_config(
        lr_schedule="linear",
        g_lr=2e-4,
        d_lr=4e-4,
        mixed_precision="mixed_float16",
        deterministic=True,
    )
    settings = resolve_settings(config)
    straight = GANTrainer(settings)
    rates = _rates_over(straight, iter(images()), range(1, 5), 4)
    expected = [(2e-4 * share, 4e-4 * share) for share in (1, 0.75, 0.5, 0.25)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)

    first = GANTrainer(settings)
    _rates_over(first, iter(images()), range(1, 3), 4)
    saved = tf.train.Checkpoint(**first.checkpointed()).save(str(tmp_path / "ckpt"))
    resumed = GANTrainer(settings)
    tf.train.Checkpoint(**resumed.checkpointed()).restore(saved).assert_consumed()
    assert _rates_over(resumed, iter(images().skip(2)), range(3, 5), 4) == rates[2:]
    for a, b in zip(_weights(straight), _weights(resumed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_linear_schedules_budget_is_part_of_the_run():
    def budget(steps: int, schedule: str) -> Config:
        return tiny_config(steps=steps, lr_schedule=schedule)

    assert fingerprint_of(budget(4, "linear")) != fingerprint_of(budget(8, "linear"))
    assert fingerprint_of(budget(4, "constant")) == fingerprint_of(budget(8, "constant"))
    assert fingerprint_of(budget(4, "constant")) != fingerprint_of(budget(4, "linear"))


def test_changed_params_start_fresh_in_their_own_folder(trained_run, tmp_path):
    tmp_path = trained_run.copy_to(tmp_path / "run")
    wider = dataclasses.replace(
        tiny_config(), model=dataclasses.replace(tiny_config().model, g_width=16)
    )
    trainer, _ = run(wider, tmp_path)
    assert int(trainer.step.numpy()) == 4
    assert len(list((tmp_path / "checkpoints").iterdir())) == 2


def test_a_finished_run_started_again_takes_no_step_and_reads_its_networks(trained_run, tmp_path):
    # What `dvc repro` does when params come back to those of a finished run.
    tmp_path = trained_run.copy_to(tmp_path / "run")
    history = (tmp_path / "plots" / "history.csv").read_text()
    no_batches = images().take(0)  # a step would fail
    trainer, metrics = run(tiny_config(), tmp_path, no_batches)
    assert int(trainer.step.numpy()) == 4 and metrics["steps"] == 4
    assert (tmp_path / "plots" / "history.csv").read_text() == history
    readings = {key for key in metrics if key.startswith(("sigma_", "gamma_"))}
    assert "gamma_g_attention_16" in readings
    for key in readings:  # the restored networks, as the first run left them
        assert metrics[key] == pytest.approx(trained_run.metrics[key], rel=1e-6), key


def test_a_checkpoint_of_another_model_is_refused(trained_run, tmp_path):
    tmp_path = trained_run.copy_to(tmp_path / "run")
    wider = dataclasses.replace(
        tiny_config(), model=dataclasses.replace(tiny_config().model, g_width=16)
    )
    # Someone copies the narrow model's checkpoints into the wide model's folder.
    source = tmp_path / "checkpoints" / fingerprint_of(tiny_config())
    target = tmp_path / "checkpoints" / fingerprint_of(wider)
    shutil.copytree(source, target)
    with pytest.raises(CheckpointError, match="other params"):
        run(wider, tmp_path)
    (target / "run_identity.json").unlink()
    with pytest.raises(CheckpointError, match="does not fit the current model"):
        run(wider, tmp_path)


def test_a_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path):
    config = tiny_config(steps=4, checkpoint_every=1)
    poisoned = images(nan_from=16)  # batches 1 and 2 are finite, batch 3 is NaN
    with pytest.raises(NonFiniteLossError, match="d_loss is nan at step 3"):
        run(config, tmp_path, poisoned)
    directory = tmp_path / "checkpoints" / fingerprint_of(config)
    assert tf.train.latest_checkpoint(str(directory)).endswith("ckpt-2")


@pytest.mark.parametrize(
    "conditional, scales, options",
    [
        (True, (1, 2), {"n_critic": 2, "loss": "wasserstein", "gp_weight": 10.0}),
        (
            False,
            (1,),
            {
                "perceptual": True,
                "loss": "bce",
                "mixed_precision": "mixed_float16",
                "lr_schedule": "linear",
            },
        ),
        (
            True,
            (1,),
            {"perceptual": True, "update": "alternating", "mixed_precision": "mixed_bfloat16"},
        ),
        (False, (1, 2), {"perceptual": True, "augment": AUGMENTATIONS}),
    ],
    ids=[
        "conditional-wasserstein-gp",
        "bce-float16",
        "conditional-bfloat16",
        "augment",
    ],
)
def test_the_extensions_train_with_every_loss_precision_and_update(
    tmp_path, vgg19_stand_in, conditional, scales, options
):
    """Multi-scale D and the perceptual loss, alone and together, across the other options
    (conditional or not, in turn): between them the cases train with every loss, precision,
    update, n_critic 2, the gradient penalty and DiffAugment. (Multi-scale D with XLA:
    test_mode_levers.py's scales-bfloat16-xla case.)"""
    options = dict(options)
    if options.pop("perceptual", False):
        options |= perceptual_options(vgg19_stand_in)
    config = _with_scales(tiny_config(conditional, steps=2, **options), *scales)
    _, metrics = run(config, tmp_path)
    assert all(np.isfinite(value) for value in metrics.values()), options
    assert ("d_loss_scale2" in metrics) == (scales == (1, 2)), options
    assert ("perceptual_loss" in metrics) == ("perceptual_weight" in options), options
    logged = (tmp_path / "plots" / "history.csv").read_text().splitlines()[0]
    assert {key for key in metrics if key != "steps"} <= set(logged.split(",")), options


def test_conditional_training_samples_and_snapshots_with_attributes(tmp_path):
    """(The conditional model with the other options: the extension cases above.)"""
    trainer, metrics = run(tiny_config(True, steps=2), tmp_path)
    assert all(np.isfinite(value) for value in metrics.values())
    assert [i.name for i in trainer.sampling_generator().inputs] == ["z", "attributes"]
    assert (tmp_path / "plots" / "samples" / "step_000002.png").is_file()
    assert (tmp_path / "plots" / "attention" / "step_000002.npz").is_file()


def test_the_fake_half_gets_attribute_rows_of_the_training_split():
    draws = Draws(seed=0, step=tf.constant(0, tf.int64), batch_size=8, replica_batch_size=8)
    drawn = {tuple(row) for c in range(3) for row in draws.attributes(c, conditioning()).numpy()}
    # (b, a) one-hot: b ∈ {0, 1} then a ∈ {0, 1, 2}; the table holds (1,0) (0,2) (1,2) (1,1)
    table = {(0, 1, 1, 0, 0), (1, 0, 0, 0, 1), (0, 1, 0, 0, 1), (0, 1, 0, 1, 0)}
    assert drawn == table


def test_a_conditional_trainer_limits_the_critic_updates():
    config = tiny_config(True, n_critic=MAX_CONDITIONAL_CRITICS + 1)
    with pytest.raises(ValueError, match="train.n_critic is 21"):
        GANTrainer(resolve_settings(config), conditioning=conditioning())


def test_batch_must_split_over_the_replicas():
    class FourReplicas:
        num_replicas_in_sync = 4

    config = tiny_config()
    with pytest.raises(ValueError, match=r"train.batch_size \(6\) must be divisible"):
        six = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=6))
        GANTrainer(resolve_settings(six, FourReplicas()))


@pytest.mark.parametrize(
    "cases",
    [(0, 1), (2,), (3, 4)],
    ids=["conditional-augment-scales+perceptual", "growth", "resnet+mode-levers"],
)
def test_mirrored_strategy_matches_a_single_device(vgg19_stand_in, cases):
    """Two logical CPUs must be set before TensorFlow starts, hence a fresh process (one per
    group of the cases below, so that test workers can share them out)."""
    script = textwrap.dedent(
        """
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        two_cpus = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, two_cpus)
        import dataclasses, sys
        from tests.helpers import conditioning, images, labelled_images, tiny_config
        from sagan.config import AUGMENTATIONS
        from sagan.training.settings import resolve_settings
        from sagan.training.step import GANTrainer

        PERCEPTUAL = {
            "perceptual_weight": 1.0,
            "perceptual_layers": ("block1_conv2", "block2_conv2"),
            "perceptual_weights": sys.argv[1],
        }

        GROWTH = {"progressive": (16, 32), "progressive_steps": (2,), "progressive_fade": 1}

        RESNET = {"architecture": "resnet", "g_width": 8, "d_width": 8}

        LEVERS = {"minibatch_stddev": 2, "pack": 2, "d_depth": 1}

        REGULARISED = {"consistency_weight": 10.0, "r1_weight": 1.0, "r1_every": 2}

        def losses(strategy, conditional, augment, scales=(1,), extra={}, model_options={}):
            config = tiny_config(conditional, augment=augment, **extra)
            model = dataclasses.replace(config.model, discriminator_scales=scales, **model_options)
            attributes = conditioning() if conditional else None
            settings = resolve_settings(dataclasses.replace(config, model=model), strategy)
            trainer = GANTrainer(settings, attributes)
            batches = labelled_images() if conditional else images()
            iterator = iter(strategy.experimental_distribute_dataset(batches))
            rows = []
            for update in (1, 2, 3):
                trainer.begin_update(update, 3)  # a progressive run's stage, the rates
                rows.append({k: float(v) for k, v in trainer.train_step(iterator).items()})
            return rows

        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        # Each case stacks features, so that every update path and feature meets the mirrored
        # strategy without a process and a trace of its own: two backward passes (the
        # multi-scale D, the levers) and the shared one (the others).
        CASES = (
            (True, AUGMENTATIONS, (1, 2)),  # conditional, DiffAugment, multi-scale D
            (False, None, (1,), PERCEPTUAL),  # packed D; P of the global batch (an all-reduce)
            # 16px twice, then fading to 32px; the rates falling, through Adam's reset
            (True, None, (1,), {**GROWTH, "lr_schedule": "linear"}),
            (True, None, (1,), {}, RESNET),  # the residual networks' synchronized BNs
            (False, None, (1,), REGULARISED, LEVERS),  # per-replica groups; R1 on update 2
        )
        for case in sys.argv[2:]:
            conditional, augment, *extensions = CASES[int(case)]
            single = losses(tf.distribute.get_strategy(), conditional, augment, *extensions)
            mirrored = losses(strategy, conditional, augment, *extensions)
            for a, b in zip(single, mirrored):
                for key in a:
                    assert abs(a[key] - b[key]) <= 1e-4 * max(1.0, abs(a[key])), (key, a, b)
            print("OK", conditional, single[-1], mirrored[-1])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(vgg19_stand_in), *map(str, cases)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("OK") == len(cases), result.stdout


@pytest.mark.parametrize(
    "loss, conditional, augment, perceptual, levers",
    [
        ("hinge", False, None, False, False),
        ("bce", False, None, False, False),
        ("wasserstein", False, None, False, False),
        ("hinge", True, None, False, False),
        ("hinge", False, AUGMENTATIONS, False, False),
        ("hinge", True, None, True, False),
        ("hinge", False, None, False, True),
    ],
)
def test_one_backward_pass_gives_the_gradients_of_two(
    loss, conditional, augment, perceptual, levers, request
):
    """The simultaneous update's shared backward pass matches one tape per network."""
    extra = perceptual_options(request.getfixturevalue("vgg19_stand_in")) if perceptual else {}
    if levers:  # packs of 2 and consistency regularisation
        extra |= {"consistency_weight": 10.0}
    config = tiny_config(conditional, loss=loss, augment=augment, **extra)
    model = dataclasses.replace(config.model, pack=2 if levers else 1)
    attributes = conditioning() if conditional else None
    trainer = GANTrainer(resolve_settings(dataclasses.replace(config, model=model)), attributes)
    assert trainer.shares_backward
    draws = Draws(config.train.seed, trainer.step, 8, 8)
    real = Half(next(iter(images())), None)
    if conditional:
        batch_images, batch_labels = next(iter(labelled_images()))
        real = Half(batch_images, attributes.encode(attributes.select(batch_labels)))
    fake = Half(tf.random.stateless_normal((8, 16), (0, 1)), draws.attributes(0, attributes))
    # Put the hinge's margin among the fake logits, so half of the fakes send D nothing.
    parts = trainer.parts
    fake_images = Half(updates.generate(parts, fake), fake.attributes)
    fake_logits = updates.judge(parts, real, fake_images, draws, 0).fake
    half = len(fake_logits) // 2
    middle = np.sort(fake_logits.numpy().ravel())[half - 1 : half + 1].mean()
    trainer.discriminator.get_layer("sn_logit").layer.bias.assign([-1.0 - middle])
    state = trainer.discriminator.get_weights()  # the power iteration's u changes per call

    def gradients(update):
        trainer.discriminator.set_weights(state)
        recorders = {"d_optimizer": GradientRecorder(), "g_optimizer": GradientRecorder()}
        metrics = update(dataclasses.replace(parts, **recorders), real, fake, draws, 0)
        kept = recorders["d_optimizer"].gradients + recorders["g_optimizer"].gradients
        return [g.numpy() for g in kept], {name: float(value) for name, value in metrics.items()}

    shared, shared_metrics = gradients(updates.shared_backward_update)
    separate, separate_metrics = gradients(updates.two_backwards_update)
    assert shared_metrics == pytest.approx(separate_metrics, rel=1e-6)
    # Biases ahead of BatchNorm have a gradient of 0 up to rounding: judge it by the others.
    scale = max(np.abs(gradient).max() for gradient in separate)
    assert scale > 0
    for got, expected in zip(shared, separate, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * scale)


class GradientRecorder:
    """An optimizer that keeps the gradients it is given instead of applying them."""

    def __init__(self):
        self.gradients = []

    def scale_loss(self, loss):
        return loss

    def apply_gradients(self, pairs):
        self.gradients = [gradient for gradient, _ in pairs]


def test_the_gradient_penalty_float16_and_several_scales_take_two_backward_passes():
    for config in (
        tiny_config(loss="wasserstein", gp_weight=10.0),
        tiny_config(mixed_precision="mixed_float16"),
        _with_scales(tiny_config(), 1, 2),
    ):
        assert not GANTrainer(resolve_settings(config)).shares_backward, config


def test_ctrl_c_during_a_tracker_write_lets_it_finish_then_stops(tmp_path):
    """Ctrl-C lands mid-write: the write completes, and training stops after that step."""

    class CtrlCWhileLogging(NullTracker):
        def __init__(self):
            self.logged = []

        def log_metrics(self, metrics, step):
            signal.raise_signal(signal.SIGINT)
            self.logged.append(step)  # reached only if the signal did not raise here

    config = tiny_config(steps=8, checkpoint_every=100)
    trainer = GANTrainer(resolve_settings(config))
    paths = TrainPaths(checkpoints=tmp_path / "checkpoints", plots=tmp_path / "plots")
    tracker = CtrlCWhileLogging()
    # Python's own handler, as in a terminal: a shell that runs the tests in the background
    # hands SIGINT down ignored.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(trainer, images(), 64, paths, tracker)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert tracker.logged == [2]
    directory = tmp_path / "checkpoints" / fingerprint_of(config)
    assert tf.train.latest_checkpoint(str(directory)).endswith("ckpt-2")


@pytest.mark.skipif(bool(tf.config.list_logical_devices("GPU")), reason="a GPU is visible")
def test_asking_for_mirrored_gpus_on_a_cpu_says_so_in_one_line(caplog):
    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 1
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "train.strategy is mirrored but TensorFlow sees no GPU: training on the CPU"
    ]
