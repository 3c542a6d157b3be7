"""Evaluation during training: the quality curve and the best checkpoint.

Every ``train.eval_every`` generator updates, and at the end, a scorer (built by the train
stage from :mod:`sagan.evaluation.validation`; this layer only calls it) scores the sampling
generator on the validation split. Each evaluation is a row of ``quality.csv`` (step,
training minutes, every score) and a set of ``val/*`` step metrics; with ``train.keep_best``
the checkpoint with the best score so far is kept apart from the rolling ones.

Crash safety: the loop saves the rolling checkpoint of an evaluation step before it
evaluates, and a resumed run drops the rows from its resumed step on and evaluates that
step again (its weights are the checkpoint's). So a kill at any point, the middle of an
evaluation included, resumes with each evaluation step in the curve exactly once, and the
best checkpoint is never of a step that the curve does not hold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import keras

from sagan.config import QUALITY_METRICS, TrainConfig
from sagan.files import read_csv_rows, write_csv_rows
from sagan.tracking import VALIDATION, Tracker, section
from sagan.training.checkpoints import Checkpoints

logger = logging.getLogger(__name__)

Scorer = Callable[[keras.Model], dict[str, float]]
STEP, MINUTES = "step", "train_minutes"  # the columns before the scores


class QualityCurve:
    """``quality.csv`` and the best score so far, as a resumed run finds them.

    Every task of a multi-worker job keeps one (they read the chief's folder, as they do to
    resume), so all agree on which evaluation is the best; only the ``writer`` writes it.
    """

    def __init__(
        self,
        path: Path,
        resumed_step: int,
        keep_best: str | None,
        best: dict | None,
        writer: bool = True,
    ):
        self.path, self.keep_best, self.writer = path, keep_best, writer
        rows = read_csv_rows(path) if resumed_step else []
        self.rows = [row for row in rows if int(row[STEP]) < resumed_step]
        # A row of the resumed step (evaluated again) lends its minutes to the new one; its
        # scores reached the tracker already.
        self._minutes_of = {int(row[STEP]): float(row[MINUTES]) for row in rows}
        self.best = None
        if best is not None and best["metric"] == keep_best:
            self.best = best
        elif best is not None:
            logger.warning(
                "the best checkpoint was chosen by %s, train.keep_best is now %s: the next "
                "evaluation starts the best anew",
                best["metric"],
                keep_best,
            )

    def reported(self, step: int) -> bool:
        """Whether an earlier process recorded (and so reported) the evaluation of ``step``."""
        return step in self._minutes_of

    def minutes_at(self, step: int, seconds_per_step: float | None) -> float:
        """Training minutes up to ``step`` (evaluations excluded): the last row's, plus the
        updates since at this process's pace (at the earlier rows' pace before it has one)."""
        if step in self._minutes_of and seconds_per_step is None:
            return self._minutes_of[step]
        last_step, last_minutes = 0, 0.0
        if self.rows:
            last_step, last_minutes = int(self.rows[-1][STEP]), float(self.rows[-1][MINUTES])
        if seconds_per_step is None:
            if not last_step:
                return math.nan
            seconds_per_step = 60 * last_minutes / last_step
        return last_minutes + (step - last_step) * seconds_per_step / 60

    def append(self, step: int, minutes: float, scores: dict[str, float]) -> bool:
        """Record an evaluation; True when it is the new best of ``keep_best``."""
        self.rows.append({STEP: step, MINUTES: minutes, **scores})
        if self.writer:
            write_csv_rows(self.path, self.rows)
        best_so_far = None if self.best is None else self.best["value"]
        if self.keep_best is None or not is_better(
            self.keep_best, scores[self.keep_best], best_so_far
        ):
            return False
        self.best = {"metric": self.keep_best, "value": scores[self.keep_best], "step": step}
        return True


def is_better(metric: str, value: float, best: float | None) -> bool:
    """Whether ``value`` of ``metric`` beats ``best`` (None: nothing to beat); ties keep the
    earlier checkpoint."""
    if best is None:
        return True
    return value < best if QUALITY_METRICS[metric] == "lower" else value > best


def evaluation_steps(train: TrainConfig, end: int) -> Callable[[int], bool]:
    """Whether a step is evaluated: every ``train.eval_every`` updates, and the last one."""
    return lambda step: step > 0 and (step % train.eval_every == 0 or step == end)


class Evaluations:
    """Scores the sampling generator at the evaluation steps; records, reports, keeps the best.

    Every task of a multi-worker job evaluates, so that all take part in saving the best;
    only the chief's tracker and curve write.
    """

    def __init__(
        self, scorer: Scorer, checkpoints: Checkpoints, curve: QualityCurve, tracker: Tracker
    ) -> None:
        self.scorer = scorer
        self.checkpoints = checkpoints
        self.curve = curve
        self.tracker = tracker

    def run(self, step: int, generator: keras.Model, seconds_per_step: float | None) -> None:
        """Score ``generator`` (the state of ``step``, already checkpointed) and record it."""
        scores = self.scorer(generator)
        reported = self.curve.reported(step)  # a resumed step's scores: once in MLflow
        is_best = self.curve.append(step, self.curve.minutes_at(step, seconds_per_step), scores)
        if not reported:
            self.tracker.log_metrics(section(VALIDATION, scores), step)  # val/fid, …
        if is_best:
            self.checkpoints.save_best(step, self.curve.best)
        logger.info(
            "step %d: %s",
            step,
            ", ".join(f"{key} {scores[key]:.4g}" for key in QUALITY_METRICS if key in scores),
        )
