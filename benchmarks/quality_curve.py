"""The quality curve of a run, scored from its kept checkpoints, against the targets.

    python -m benchmarks.quality_curve checkpoints/<fingerprint> --figure docs/quality_curve.png

Run it in the repository whose params.yaml trained the run, once prepare, encoder and
reference have run there. It restores every ``ckpt-N`` in the folder (a run keeps them
all when ``train.keep_checkpoints`` is large enough) and scores each with the scorer that
``train.eval_every`` uses (:mod:`sagan.evaluation.validation`: the sampling generator's
fixed-noise faces against the validation split), so each row is what training would have
logged at that step. This is how a run made without evaluations gets its curve, and how
every run is scored again when a measurement changes.

It prints one row per checkpoint and, per target of the quality issue, the first update
count where the target holds (or the best value reached). ``--images-per-second`` (the
train step's speed measured on a quiet machine with ``python -m benchmarks.train_step``)
adds training minutes: the updates' time at that speed (each evaluation's own time is the
``eval_seconds`` column). With ``--csv``, rows already in the file are kept and only new
checkpoints are scored: a long run can be scored as it goes.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import tensorflow as tf

from sagan import paths
from sagan.config import load_config
from sagan.evaluation.validation import validation_scorer
from sagan.files import read_csv_rows, write_csv_rows
from sagan.training.session import prepared_manifest, training_conditioning
from sagan.training.settings import resolve_settings
from sagan.training.step import GANTrainer

# The targets: (metric, "at most" | "at least", value).
TARGETS = (
    ("dropped_classes", "at most", 0),
    ("attribute_tv", "at most", 0.05),
    ("attribute_tv_max", "at most", 0.10),
    ("recall", "at least", 0.5),
    ("precision", "at least", 0.7),
    ("coherence", "at least", 0.95),
)
SHOWN = (
    "fid",
    "precision",
    "recall",
    "coverage",
    "attribute_tv",
    "attribute_tv_max",
    "dropped_classes",
    "coherence",
)


def checkpoint_steps(folder: Path) -> list[int]:
    """The steps of the ``ckpt-N`` checkpoints in ``folder``, in order."""
    return sorted(
        int(m.group(1))
        for p in folder.glob("ckpt-*.index")
        if (m := re.fullmatch(r"ckpt-(\d+)\.index", p.name))
    )


def score_checkpoints(folder: Path, every: int, done: set[int]) -> list[dict[str, float]]:
    """A row of scores for every ``every``-th checkpoint in ``folder`` not in ``done``."""
    config = load_config()
    manifest = prepared_manifest(config, paths.PREPARED_DIR)
    conditioning = training_conditioning(config, manifest, paths.PREPARED_DIR)
    trainer = GANTrainer(resolve_settings(config), conditioning)
    scorer = validation_scorer(config, paths.PREPARED_DIR, conditioning)
    checkpoint = tf.train.Checkpoint(**trainer.checkpointed())
    rows = []
    for step in checkpoint_steps(folder):
        if step % every or step in done:
            continue
        checkpoint.restore(str(folder / f"ckpt-{step}")).expect_partial()
        started = time.perf_counter()
        scores = scorer(trainer.sampling_generator())
        rows.append({"step": step, "eval_seconds": time.perf_counter() - started, **scores})
        print(
            " | ".join(
                [f"{step:>6}", *(f"{key} {scores[key]:.4g}" for key in SHOWN if key in scores)]
            ),
            flush=True,
        )
    return rows


def numeric_rows(path: Path) -> list[dict[str, float]]:
    """A quality CSV's rows as numbers; a score a row lacks (empty: the minutes of a row
    scored afterwards beside rows logged in training) is left out of it."""
    return [
        {key: float(value) for key, value in row.items() if value != ""}
        for row in read_csv_rows(path)
    ]


def _step(row: dict[str, float]) -> float:
    return row["step"]


def first_met(rows: list[dict[str, float]]) -> list[str]:
    """Per target: the first step where it holds, or the best value and where it was."""
    lines = []
    for metric, direction, target in TARGETS:
        values = [(row["step"], row[metric]) for row in rows if metric in row]
        if not values:
            continue
        holds = [
            step
            for step, value in values
            if (value <= target if direction == "at most" else value >= target)
        ]
        pick = min if direction == "at most" else max
        best_step, best = pick(values, key=lambda pair: pair[1])
        where = (
            f"first holds at update {holds[0]}"
            if holds
            else f"never; best {best:.3g} at update {best_step}"
        )
        lines.append(f"{metric} {direction} {target}: {where} (last {values[-1][1]:.3g})")
    return lines


def plot(rows: list[dict[str, float]], figure: Path, minutes: list[float] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (("fid",), "FID (encoder features)", None),
        (("precision", "recall", "coverage"), "share", {"precision": 0.7, "recall": 0.5}),
        (
            ("attribute_tv", "attribute_tv_max"),
            "total variation",
            {"attribute_tv": 0.05, "attribute_tv_max": 0.10},
        ),
        (("dropped_classes",), "dropped classes", {"dropped_classes": 0}),
        (("coherence",), "coherence", {"coherence": 0.95}),
    ]
    steps = [row["step"] for row in rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    for axis, (keys, label, targets) in zip(axes, panels, strict=True):
        for key in keys:
            (line,) = axis.plot(steps, [row[key] for row in rows], marker=".", label=key)
            if targets and key in targets:
                axis.axhline(targets[key], color=line.get_color(), linestyle=":", linewidth=1)
        axis.set_xlabel("generator update")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if len(keys) > 1:
            axis.legend(fontsize=8)
        if minutes is not None:
            top = axis.secondary_xaxis(
                "top",
                functions=(
                    lambda x: _interpolate(x, steps, minutes),
                    lambda m: _interpolate(m, minutes, steps),
                ),
            )
            top.set_xlabel("training minutes", fontsize=8)
    fig.suptitle("Quality on the validation split over training (dotted: the targets)")
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=90)


def grid_strip(folder: Path, steps: list[int], figure: Path) -> None:
    """The run's fixed-noise grids at ``steps`` (its plots/samples/), top halves one under
    another, each labelled with its update count."""
    from PIL import Image, ImageDraw

    halves = []
    for step in steps:
        image = Image.open(folder / "plots" / "samples" / f"step_{step:06d}.png").convert("RGB")
        half = image.crop((0, 0, image.width, image.height // 2))
        labelled = Image.new("RGB", (half.width, half.height + 16), "white")
        labelled.paste(half, (0, 16))
        ImageDraw.Draw(labelled).text((4, 2), f"update {step:,}", fill="black")
        halves.append(labelled)
    strip = Image.new("RGB", (halves[0].width, sum(h.height for h in halves)), "white")
    for index, half in enumerate(halves):
        strip.paste(half, (0, index * half.height))
    figure.parent.mkdir(parents=True, exist_ok=True)
    strip.save(figure, optimize=True)


def _interpolate(x, xs: list[float], ys: list[float]):
    import numpy as np

    return np.interp(x, xs, ys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", type=Path, help="a run's checkpoints/<fingerprint> folder")
    parser.add_argument("--every", type=int, default=500, help="score every N-th update's one")
    parser.add_argument(
        "--csv", type=Path, help="the rows: those already there are kept, new checkpoints added"
    )
    parser.add_argument("--figure", type=Path, help="draw the curves into this PNG")
    parser.add_argument("--grids", type=Path, help="the run's sample grids at --grid-steps, a PNG")
    parser.add_argument("--grid-steps", type=int, nargs="+", default=[1500, 3000, 6000, 12000])
    parser.add_argument(
        "--images-per-second",
        type=float,
        help="quiet train-step speed: adds training minutes to the rows",
    )
    args = parser.parse_args()
    kept = numeric_rows(args.csv) if args.csv else []
    done = {int(row["step"]) for row in kept}
    rows = sorted(kept + score_checkpoints(args.checkpoints, args.every, done), key=_step)
    minutes = None
    if args.images_per_second:  # the updates' time alone: each evaluation's is eval_seconds
        batch = load_config().train.batch_size
        minutes = [row["step"] * batch / args.images_per_second / 60 for row in rows]
        for row, value in zip(rows, minutes, strict=True):
            row["train_minutes"] = value
    for line in first_met(rows):
        print(line)
    if args.csv:
        write_csv_rows(args.csv, rows)
    if args.figure:
        plot(rows, args.figure, minutes)
    if args.grids:
        grid_strip(args.checkpoints, args.grid_steps, args.grids)


if __name__ == "__main__":
    main()
