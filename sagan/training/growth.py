"""When a progressive run (``train.progressive``) trains which stage, as a function of the step.

Phase p trains at resolution r_p for ``progressive_steps[p]`` generator updates (the last
phase for the rest of the budget). Every phase after the first begins with
``progressive_fade`` = F updates of fade-in: at its k-th update (k = 1 … F) the new block
counts with α = k / (F + 1), so α rises linearly from 0 towards 1; from update F + 1 of the
phase on, the new resolution trains alone. Updates are numbered from 1, as ``train.step``
counts them, so a checkpoint taken after any update (mid-fade included) fixes the stage and
α of every update that follows.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import tensorflow as tf

from sagan.config import TrainConfig
from sagan.model.progressive import Stage


@dataclass(frozen=True)
class GrowthSchedule:
    resolutions: tuple[int, ...]
    phase_steps: tuple[int, ...]  # one per resolution but the last
    fade: int

    @classmethod
    def from_config(cls, train: TrainConfig) -> GrowthSchedule | None:
        """The schedule of ``train.progressive``; None when it is off."""
        if train.progressive is None:
            return None
        return cls(train.progressive, train.progressive_steps, train.progressive_fade)

    def _starts(self) -> list[int]:
        """The updates done before each phase began: 0, then the running sums."""
        return [0, *itertools.accumulate(self.phase_steps)]

    def phase_index(self, update: int) -> int:
        """The phase (0 for the first resolution) that runs ``update``."""
        return max(i for i, start in enumerate(self._starts()) if start < update)

    def phase_start(self, update: int) -> int:
        """The updates done before the phase of ``update`` began."""
        return self._starts()[self.phase_index(update)]

    def stage(self, update: int) -> Stage:
        """The stage that runs ``update`` (from 1; past the budget, the last stage)."""
        index = self.phase_index(update)
        fading = index > 0 and update - self.phase_start(update) <= self.fade
        return Stage(self.resolutions[index], fading)

    def alpha(self, update: int) -> float:
        """The new resolution's weight in ``update``: k / (F + 1) at fade-in update k, else 1."""
        if not self.stage(update).fading:
            return 1.0
        return (update - self.phase_start(update)) / (self.fade + 1)

    def starts_phase(self, update: int) -> bool:
        """Whether ``update`` is the first of a phase after the first."""
        return update > 1 and self.phase_start(update) == update - 1


def fade_alpha(step: tf.Tensor, phase_start: int, fade: int) -> tf.Tensor:
    """α of the update in flight, in the graph (``step`` counts the updates done before it)."""
    done_in_phase = tf.cast(step - phase_start, tf.float32)
    return (done_in_phase + 1.0) / (fade + 1)


def at_stage_size(images: tf.Tensor, image_size: int, stage: Stage, alpha) -> tf.Tensor:
    """Real images as a progressive stage's D sees them: average-pooled to its resolution
    and, during a fade-in, blended as G's output is: (1 − α)·upsampled half-size image +
    α·the image (Karras et al.)."""
    factor = image_size // stage.resolution
    if factor > 1:
        images = tf.nn.avg_pool2d(images, factor, factor, "VALID")
    if stage.fading:
        coarse = tf.nn.avg_pool2d(images, 2, 2, "VALID")
        coarse = tf.repeat(tf.repeat(coarse, 2, axis=1), 2, axis=2)
        images = coarse + alpha * (images - coarse)
    return images
