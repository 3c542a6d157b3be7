"""The training loop around :class:`~sagan.training.step.GANTrainer`: budget, checkpoints, logs.

Every ``train.log_every`` generator updates a row goes to ``history.csv`` and the tracker
(losses, mean D outputs, each attention γ, each σ, images/s); every ``train.sample_every`` a
fixed-noise grid is saved with a snapshot of the attention maps of its first face
(:mod:`sagan.sampling.attention_maps`); every ``train.checkpoint_every`` and at the end, a
checkpoint. Given a scorer, every ``train.eval_every`` and at the end the sampling generator
is scored (:mod:`sagan.training.quality`: ``quality.csv``, the best checkpoint).
A non-finite loss stops training at once, before it can reach a checkpoint. Ctrl-C stops it
after the step in flight, with a checkpoint of that step.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from sagan.config import Config
from sagan.files import TEMPORARY_PREFIX, atomic_directory, read_csv_rows, write_csv_rows
from sagan.model.conditioning import model_inputs
from sagan.model.layers import SelfAttention, SpectralNormalization
from sagan.paths import QUALITY_FILE
from sagan.sampling.attention_maps import save_snapshot
from sagan.sampling.faces import fixed_attributes, fixed_noise
from sagan.sampling.grids import grid, save_png, to_uint8, upsample_nearest
from sagan.tracking import TRAIN, NullTracker, Tracker, section
from sagan.training.checkpoints import Checkpoints
from sagan.training.quality import Evaluations, QualityCurve, Scorer, evaluation_steps
from sagan.training.step import GANTrainer

logger = logging.getLogger(__name__)

SAMPLE_GRID_SIDE = 8  # the fixed-noise grid is 8×8


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite."""


class WorkerLostError(RuntimeError):
    """A task of a multi-worker job stopped: the others cannot go on."""


@dataclass(frozen=True)
class TrainPaths:
    checkpoints: Path  # persistent: checkpoints/<fingerprint>/, with the run's live plots
    plots: Path  # a copy of the live plots (history.csv, samples/) made at the end


def total_steps(config: Config, num_train_images: int) -> int:
    """Generator updates to run: ``train.epochs`` wins over ``train.steps`` when set."""
    train = config.train
    if train.epochs is None:
        return train.steps
    images_per_step = train.batch_size * train.n_critic
    return max(1, math.ceil(train.epochs * num_train_images / images_per_step))


class History:
    """``history.csv``: one row per logged step; rows past a resumed step are dropped."""

    def __init__(self, path: Path, resumed_step: int):
        self.path = path
        rows = read_csv_rows(path) if resumed_step else []
        self.rows = [row for row in rows if int(row["step"]) <= resumed_step]

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        write_csv_rows(self.path, self.rows)


def network_readings(trainer: GANTrainer) -> dict[str, float]:
    """γ of every self-attention layer (``gamma_g_attention_16``, …), then σ of every
    spectrally normalized layer (``sigma_d_sn_down1``, …), of the stage's G and D."""
    networks = (("g", trainer.generator), ("d", trainer.discriminator))
    layers = [(prefix, layer) for prefix, model in networks for layer in model.layers]
    gammas = {
        f"gamma_{prefix}_{layer.name}": float(layer.gamma.numpy())
        for prefix, layer in layers
        if isinstance(layer, SelfAttention)
    }
    sigmas = {
        f"sigma_{prefix}_{layer.name}": float(layer.sigma().numpy())
        for prefix, layer in layers
        if isinstance(layer, SpectralNormalization)
    }
    return gammas | sigmas


def train(
    trainer: GANTrainer,
    dataset: tf.data.Dataset,
    num_train_images: int,
    paths: TrainPaths,
    tracker: Tracker | None = None,
    chief: bool = True,
    scorer: Scorer | None = None,
) -> dict[str, float]:
    """Train until the budget is spent, resuming from the newest matching checkpoint.

    ``dataset`` yields global batches of float32 images in [-1, 1], repeated forever (with
    their (B, A) int labels, as ``(images, labels)``, for a conditional trainer).
    Returns the final metrics (losses, D outputs, γ per attention layer, steps, images/s).
    A multi-worker job's other tasks (``chief`` False) train and take part in every
    checkpoint, and write nothing else. ``scorer`` (with ``train.eval_every`` set) scores the
    sampling generator during training.
    """
    config = trainer.settings.config
    tracker = tracker or NullTracker()
    # MultiWorkerMirroredStrategy's input iterators cannot be checkpointed. The data order is
    # a function of the seed, so a resumed job skips the batches already done instead.
    multi_worker = isinstance(trainer.strategy, tf.distribute.MultiWorkerMirroredStrategy)
    iterator = None if multi_worker else _distribute(trainer.strategy, dataset)
    checkpoints = Checkpoints(
        paths.checkpoints,
        trainer.settings,
        config.train.keep_checkpoints,
        writer=chief,
        **trainer.checkpointed(),
        **({"iterator": iterator} if iterator is not None else {}),
    )
    checkpoints.restore_latest()
    if iterator is None:
        done = int(trainer.step.numpy()) * config.train.n_critic
        iterator = _distribute(trainer.strategy, dataset.skip(done))
    start, end = int(trainer.step.numpy()), total_steps(config, num_train_images)
    # Live plots sit beside the checkpoints, so a resumed run keeps its history.
    live_plots = checkpoints.directory / "plots"
    history = History(live_plots / "history.csv", start)
    noise = fixed_noise(config.train.seed, config.model.latent_dim, SAMPLE_GRID_SIDE**2)
    attributes = fixed_attributes(trainer.conditioning, config.train.seed, SAMPLE_GRID_SIDE**2)
    metrics: dict[str, float] = {}
    image_size = config.data.image_size
    timer = _Throughput(config.train.batch_size)
    evaluations, evaluated = None, (lambda step: False)
    if scorer is not None and config.train.eval_every is not None:
        evaluated = evaluation_steps(config.train, end)
        best = checkpoints.best_record()
        curve = QualityCurve(live_plots / QUALITY_FILE, start, config.train.keep_best, best, chief)
        evaluations = Evaluations(scorer, checkpoints, curve, tracker)
        if evaluated(start):  # its row may be missing or half-recorded: score it again
            trainer.use_stage_of(start)  # the models it was scored with
            evaluations.run(start, trainer.sampling_generator(), None)
    trainer.use_stage_of(min(start + 1, end))  # the last stage's models when none is left
    progress = tqdm(total=end, initial=start, desc="train", unit="step", dynamic_ncols=True)
    with _StopAtStepEnd() as stop, progress:
        for step in range(start + 1, end + 1):
            stage = trainer.stage
            trainer.begin_update(step, end)
            if trainer.stage != stage:  # a progressive run's new stage: its own speed
                timer = _Throughput(config.train.batch_size)
            losses = _train_step(trainer, iterator, step, multi_worker)
            _check_finite(losses, step)
            timer.tick()
            progress.update()
            progress.set_postfix(
                d=f"{losses['d_loss']:.3f}", g=f"{losses['g_loss']:.3f}", ips=f"{timer.rate:.0f}"
            )
            if chief and (step % config.train.log_every == 0 or step == end):
                metrics = {
                    **losses,
                    **trainer.growth_metrics(),
                    **network_readings(trainer),
                }
                metrics["images_per_second"] = timer.rate
                history.append({"step": step, **metrics})
                tracker.log_metrics(section(TRAIN, metrics), step)
            if chief and (step % config.train.sample_every == 0 or step == end):
                sample_path = live_plots / "samples" / f"step_{step:06d}.png"
                _save_samples(trainer, model_inputs(noise, attributes), sample_path, image_size)
                tracker.log_artifact(sample_path, "samples")
                snapshot_path = live_plots / "attention" / f"step_{step:06d}.npz"
                save_snapshot(
                    trainer.sampling_generator(),
                    trainer.discriminator,
                    noise[:1],
                    snapshot_path,
                    None if attributes is None else attributes[:1],
                    image_size,
                )
            if step % config.train.checkpoint_every == 0 or step == end or evaluated(step):
                checkpoints.save(step)  # before an evaluation: see sagan.training.quality
            if evaluated(step):
                with timer.paused():
                    evaluations.run(step, trainer.sampling_generator(), timer.seconds_per_step)
            if stop.requested and step < end:
                logger.warning("interrupted: saving a checkpoint at step %d", step)
                checkpoints.save(step)
                raise KeyboardInterrupt
    if not metrics:  # the budget was already spent by the checkpoint we resumed from
        metrics = network_readings(trainer)
    if evaluations is not None and evaluations.curve.best is not None:
        best = checkpoints.restore_best()  # what the stage exports
        logger.info(
            "the best checkpoint: step %d (%s %.4g)", best["step"], best["metric"], best["value"]
        )
        metrics = {**metrics, "best_step": best["step"], f"best_{best['metric']}": best["value"]}
        tracker.log_metrics(section(TRAIN, {"best_step": best["step"]}), end)
    if chief:
        _publish(live_plots, paths.plots)
    return {**metrics, "steps": end}


def _distribute(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset):
    """An iterator over ``dataset`` split over the replicas (and workers) of ``strategy``.

    Every worker reads the whole stream and keeps its rows of each global batch (sharding
    by record, not by file: prepare writes few shards, 5 at the default size), so the
    batches are those of one process, whatever the number of workers.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return iter(strategy.experimental_distribute_dataset(dataset.with_options(options)))


class _StopAtStepEnd:
    """Turns Ctrl-C (SIGINT) into a request that the loop reads between steps.

    A KeyboardInterrupt raised wherever the signal lands could cut an MLflow write or a
    checkpoint short (SQLAlchemy then logs a traceback from its connection pool); between
    steps nothing is in flight. Repeats are requests too: DVC passes the terminal's Ctrl-C
    on, so one press can arrive twice. Off the main thread, where Python takes no signals,
    nothing changes.
    """

    def __enter__(self) -> _StopAtStepEnd:
        self.requested = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._request)
        return self

    def _request(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exception) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _publish(source: Path, target: Path) -> None:
    """Copy the live plots to the stage's output folder, replacing it whole.

    Our temporaries are left out: one that a killed run left in ``source`` is no plot.
    """
    with atomic_directory(target) as staging:
        shutil.copytree(
            source,
            staging,
            ignore=shutil.ignore_patterns(f"{TEMPORARY_PREFIX}*"),
            dirs_exist_ok=True,
        )


# What a collective op raises on the tasks that remain when one stops.
_PEER_FAILURES = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError)


def _train_step(trainer: GANTrainer, iterator, step: int, multi_worker: bool) -> dict:
    try:
        return {name: float(value) for name, value in trainer.train_step(iterator).items()}
    except _PEER_FAILURES as error:
        if not multi_worker:
            raise
        tasks = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+", error.message)))
        raise WorkerLostError(
            f"step {step}: the job lost {', '.join(tasks) or 'a task'} "
            f"({type(error).__name__}); the last checkpoint is kept: restart every worker to "
            "resume from it"
        ) from None


def _check_finite(losses: dict[str, float], step: int) -> None:
    for name, value in losses.items():
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"{name} is {value} at step {step}; training stopped, the last good "
                "checkpoint is kept (try lower train.g_lr / train.d_lr)"
            )


def _save_samples(trainer: GANTrainer, inputs, path: Path, image_size: int) -> None:
    """The grid of G's images, a progressive stage's smaller ones upsampled to ``image_size``."""
    images = trainer.sampling_generator()(inputs, training=False)
    images = upsample_nearest(to_uint8(np.asarray(images)), image_size)
    save_png(grid(images, SAMPLE_GRID_SIDE), path)


class _Throughput:
    """Images per second over the steps after the first (which includes tracing), with the
    time spent in evaluations left out."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.started = None
        self.steps = 0

    def tick(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()
            return
        self.steps += 1

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            if self.started is not None:
                self.started += time.perf_counter() - began

    @property
    def rate(self) -> float:
        if not self.steps:
            return 0.0
        return self.steps * self.batch_size / (time.perf_counter() - self.started)

    @property
    def seconds_per_step(self) -> float | None:
        """Mean seconds per update so far; None before there is a measured one."""
        return self.batch_size / self.rate if self.steps else None
