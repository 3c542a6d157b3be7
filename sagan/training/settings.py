"""What training derives from the params and the hardware, resolved once and handed down.

``train.mixed_precision`` and ``train.jit_compile`` may say ``auto``; the strategy may be
``auto``; the image size and progressive growing's stage schedule follow from other keys.
:func:`resolve_settings` works each out once, when the train stage starts (or a test or
benchmark builds a trainer), and everything below reads the answer from the
:class:`TrainingSettings` it is given: the trainer, the checkpoints' fingerprint, the
MLflow params and the stage's log lines. The strategy joins them once the job has formed.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import tensorflow as tf

from sagan.config import Config
from sagan.hardware import (
    Hardware,
    JitResolution,
    Resolution,
    resolve_jit_compile,
    resolve_precision,
)
from sagan.training.growth import GrowthSchedule

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSettings:
    config: Config
    precision: Resolution  # policy: none | mixed_float16 | mixed_bfloat16, and why
    xla: JitResolution  # jit_compile, and why
    growth: GrowthSchedule | None  # progressive growing's stages; None when it is off
    strategy: tf.distribute.Strategy | None = None  # None: the default (one device)

    @property
    def image_size(self) -> int:
        return self.config.data.image_size

    def under(self, strategy: tf.distribute.Strategy) -> TrainingSettings:
        """These settings, trained under ``strategy`` (made once the job has formed)."""
        return dataclasses.replace(self, strategy=strategy)


def resolve_settings(
    config: Config,
    strategy: tf.distribute.Strategy | None = None,
    hardware: Hardware | None = None,
) -> TrainingSettings:
    """``config``'s settings on ``hardware`` (this machine's when None), trained under
    ``strategy`` (the default one when None)."""
    return TrainingSettings(
        config=config,
        precision=resolve_precision(config.train.mixed_precision, hardware),
        xla=resolve_jit_compile(config.train, hardware),
        growth=GrowthSchedule.from_config(config.train),
        strategy=strategy,
    )


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``train.strategy``: ``auto`` picks MirroredStrategy when more than one GPU is visible,
    else the default."""
    gpus = len(tf.config.list_logical_devices("GPU"))
    if name == "auto":
        name = "mirrored" if gpus > 1 else "default"
    if name == "mirrored":
        if gpus == 0:
            logger.warning(
                "train.strategy is mirrored but TensorFlow sees no GPU: training on the CPU"
            )
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()
