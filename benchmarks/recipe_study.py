"""The recipe study (issue 14): each training lever alone against the default, as DVC experiments.

Queue the levers (one seed to screen, three to decide), run the queue, print the table:

    python -m benchmarks.recipe_study --queue default ema ttur --seeds 0   # dvc exp run --queue …
    dvc queue start -j 1                                                    # one at a time
    python -m benchmarks.recipe_study                                       # the table

Experiments are named ``<prefix><lever>-seed-<seed>``. Each row of the table is one lever:
the median over its seeds and, in brackets, the lowest and highest value, for FID (encoder
features), precision, recall, density, coverage, coherence, the attribute histograms' mean
and worst total variation, the dropped classes, and the train stage's images/s and minutes
(train minutes compare only between runs that had the machine to themselves).

Every lever is a set of ``-S`` overrides on top of ``PREVIOUS_DEFAULT`` (the default before
the study), so each one is measured alone against it; ``default`` is params.yaml as it is.

``float32``, ``reference`` and ``ema-n-critic-2`` run fewer updates: as many as the
default's budget buys, at the speed ratio measured side by side (``python -m
benchmarks.train_step``) and given by ``--float32-steps``, ``--reference-steps`` and
``--n-critic-steps``, so they compare at equal wall-clock. On a CPU without
bfloat16 units ``auto`` already trains in float32, and ``float32`` says nothing new there.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from collections import defaultdict

from benchmarks.experiments import finished, seed, value

FLOAT32_STEPS = "{float32_steps}"
REFERENCE_STEPS = "{reference_steps}"
N_CRITIC_STEPS = "{n_critic_steps}"
MULTI_SCALE_STEPS = "{multi_scale_steps}"
PROGRESSIVE_STEPS = "{progressive_steps}"
SHORT_STEPS = "{short_steps}"
RESNET_STEPS = "{resnet_steps}"
# The equal-time budgets' defaults, by placeholder (the --*-steps options below say how each
# was measured).
DEFAULT_BUDGETS = {
    FLOAT32_STEPS: 880,
    REFERENCE_STEPS: 880,
    N_CRITIC_STEPS: 930,
    MULTI_SCALE_STEPS: 1100,
    PROGRESSIVE_STEPS: 1650,
    SHORT_STEPS: 600,
    RESNET_STEPS: 414,
}
# The default before the study, as `dvc exp run -S` overrides of today's params.yaml: every
# lever below is measured alone against it. (The `default` lever is params.yaml as it is.)
PREVIOUS_DEFAULT = {
    "train.ema_decay": "null",
    "train.ema_start": "0",
    "train.deterministic": "false",
}
# Each lever alone: its overrides on top of PREVIOUS_DEFAULT.
LEVERS = {
    "default": None,
    "previous-default": {},
    "ema": {"train.ema_decay": "0.995", "train.ema_start": "500"},
    "ttur": {"train.d_lr": "4e-4"},
    "lr-2e-4": {"train.g_lr": "2e-4", "train.d_lr": "2e-4"},
    "n-critic-2": {"train.n_critic": "2"},
    "beta2-0.999": {"train.beta_2": "0.999"},
    "alternating": {"train.update": "alternating"},
    "augment": {"train.augment": "[color,translation,cutout]"},
    "float32": {"train.mixed_precision": "none", "train.steps": FLOAT32_STEPS},
    # What helped, combined: today's default (the EMA generator) with n_critic 2, given the
    # default's minutes.
    "ema-n-critic-2": {
        "train.ema_decay": "0.995",
        "train.ema_start": "500",
        "train.deterministic": "true",
        "train.n_critic": "2",
        "train.steps": N_CRITIC_STEPS,
    },
    # The seed's exact recipe (float32, the alternating update, lr 1e-4/1e-4, β 0/0.9, no
    # EMA, no augmentation), given the default's minutes.
    "reference": {
        "train.mixed_precision": "none",
        "train.update": "alternating",
        "train.steps": REFERENCE_STEPS,
    },
}
# The seed's extensions (issue 16), each on top of params.yaml as it is, so each row
# compares with `default`; the equal-time row gets the updates the default's minutes buy.
EXTENSIONS = {
    "multi-scale": {"model.discriminator_scales": "[1,2]"},
    "multi-scale-equal-time": {
        "model.discriminator_scales": "[1,2]",
        "train.steps": MULTI_SCALE_STEPS,
    },
    # params.yaml's progressive_steps and progressive_fade: 16px, then 32 and 64 fading in
    "progressive": {"train.progressive": "[16,32,64]"},
    "progressive-equal-time": {"train.progressive": "[16,32,64]", "train.steps": PROGRESSIVE_STEPS},
    # shorter low-resolution phases: 200 updates at 16px, 32px fading in over 100 and alone
    # for 200, 64px fading in over 100 and alone for the last 900
    "progressive-short": {
        "train.progressive": "[16,32,64]",
        "train.progressive_steps": "[200,300]",
        "train.progressive_fade": "100",
    },
    # no 16px phase: 600 updates at 32px, then 64px fading in over 200 and alone for 700
    "progressive-32": {"train.progressive": "[32,64]", "train.progressive_steps": "[600]"},
    # The residual networks (issue 18) against the reference ones on a short budget, for a CPU
    # where the default's 1,500 updates take over half an hour (float32, no bfloat16 units):
    # the default on --short-steps updates, and the resnet (SN in G, as the paper; widths 16,
    # about the reference's arithmetic) on the updates those minutes buy it (--resnet-steps);
    # the EMA averages from update 300 in both.
    "default-short": {"train.steps": SHORT_STEPS, "train.ema_start": "300"},
    "resnet-short-equal-time": {
        "model.architecture": "resnet",
        "model.g_spectral_norm": "true",
        "model.g_width": "16",
        "model.d_width": "16",
        "train.steps": RESNET_STEPS,
        "train.ema_start": "300",
    },
}
# (column title, metrics file, key, format)
COLUMNS = (
    ("FID", "metrics/eval.json", "fid", "{:.0f}"),
    ("precision", "metrics/eval.json", "precision", "{:.2f}"),
    ("recall", "metrics/eval.json", "recall", "{:.2f}"),
    ("density", "metrics/eval.json", "density", "{:.2f}"),
    ("coverage", "metrics/eval.json", "coverage", "{:.2f}"),
    ("coherence", "metrics/eval.json", "coherence", "{:.2f}"),
    ("attribute TV", "metrics/eval.json", "attribute_tv", "{:.3f}"),
    ("worst TV", "metrics/eval.json", "attribute_tv_max", "{:.3f}"),
    ("dropped", "metrics/eval.json", "dropped_classes", "{:.0f}"),
    ("images/s", "metrics/train.json", "images_per_second", "{:.0f}"),
)


def overrides(lever: str, budgets: dict[str, int]) -> dict[str, str]:
    """The ``-S`` overrides of ``lever``: none for the default, an extension's own, else the
    previous default's with the lever's own on top; the equal-time ``budgets`` (by
    placeholder) filled in."""
    if lever in EXTENSIONS:
        merged = EXTENSIONS[lever]
    elif LEVERS[lever] is None:
        return {}
    else:
        merged = {**PREVIOUS_DEFAULT, **LEVERS[lever]}
    return {key: str(budgets.get(value, value)) for key, value in merged.items()}


def queue_commands(levers: list[str], seeds: list[int], prefix: str, budgets: dict[str, int]):
    """The `dvc exp run --queue` command lines of ``levers`` × ``seeds``."""
    for lever in levers:
        settings = overrides(lever, budgets)
        for run_seed in seeds:
            command = ["dvc", "exp", "run", "--queue", "-n", f"{prefix}{lever}-seed-{run_seed}"]
            for key, setting in {**settings, "train.seed": str(run_seed)}.items():
                command += ["-S", f"{key}={setting}"]
            yield command


def lever_of(row: dict, prefix: str) -> str:
    """``<prefix><lever>-seed-<seed>`` → lever."""
    return row["Experiment"][len(prefix) :].rsplit("-seed-", 1)[0]


def median_range(values: list[float], fmt: str) -> str:
    middle = fmt.format(statistics.median(values))
    if len(values) == 1:
        return middle
    return f"{middle} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def print_table(groups: dict[str, list[dict]]) -> None:
    titles = [title for title, *_ in COLUMNS]
    print(f"| lever | seeds | train min | {' | '.join(titles)} |")
    print("|---" * (len(titles) + 3) + "|")
    known = [*LEVERS, *EXTENSIONS]
    order = [lever for lever in known if lever in groups] + sorted(set(groups) - set(known))
    for lever in order:
        rows = sorted(groups[lever], key=seed)
        minutes = [
            float(value(r, "metrics/train.json", "steps"))
            * float(r["train.batch_size"])
            / float(value(r, "metrics/train.json", "images_per_second"))
            / 60
            for r in rows
        ]
        cells = [
            median_range([float(value(r, file, key)) for r in rows], fmt)
            for _, file, key, fmt in COLUMNS
        ]
        seeds = ", ".join(str(seed(r)) for r in rows)
        print(f"| {lever} | {seeds} | {median_range(minutes, '{:.1f}')} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prefix", default="recipe-", help="experiment names to queue and read")
    parser.add_argument(
        "--queue", nargs="+", choices=[*LEVERS, *EXTENSIONS], help="levers to queue"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument(
        "--float32-steps",
        type=int,
        default=DEFAULT_BUDGETS[FLOAT32_STEPS],
        help="updates for float32: the default's 1,500 times the float32/bfloat16 speed ratio "
        "of `python -m benchmarks.train_step` (880 at 1/1.7)",
    )
    parser.add_argument(
        "--reference-steps",
        type=int,
        default=DEFAULT_BUDGETS[REFERENCE_STEPS],
        help="updates for the reference recipe: 1,500 times its speed ratio to the default "
        "(`sagan update=alternating` against `sagan mixed_bfloat16` in benchmarks.train_step)",
    )
    parser.add_argument(
        "--n-critic-steps",
        type=int,
        default=DEFAULT_BUDGETS[N_CRITIC_STEPS],
        help="updates for ema-n-critic-2: 1,500 times its speed ratio to the default "
        "(`sagan mixed_bfloat16 n_critic=2` against `sagan mixed_bfloat16`: 0.62)",
    )
    parser.add_argument(
        "--multi-scale-steps",
        type=int,
        default=DEFAULT_BUDGETS[MULTI_SCALE_STEPS],
        help="updates for multi-scale-equal-time: 1,500 times its speed ratio to the default "
        "(`sagan mixed_bfloat16 scales=[1,2]` against `sagan mixed_bfloat16`: 0.73)",
    )
    parser.add_argument(
        "--progressive-steps",
        type=int,
        default=DEFAULT_BUDGETS[PROGRESSIVE_STEPS],
        help="updates for progressive-equal-time: what the default's 1,500 take, at the speed "
        "of each stage against the default's (`sagan mixed_bfloat16 progressive …` in "
        "benchmarks.train_step)",
    )
    parser.add_argument(
        "--short-steps",
        type=int,
        default=DEFAULT_BUDGETS[SHORT_STEPS],
        help="updates for default-short",
    )
    parser.add_argument(
        "--resnet-steps",
        type=int,
        default=DEFAULT_BUDGETS[RESNET_STEPS],
        help="updates for resnet-short-equal-time: --short-steps times its speed ratio to the "
        "default (`sagan resnet width=16` against `sagan` in benchmarks.train_step on a float32 "
        "CPU: 31.2 / 45.3 = 0.69)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the queue commands only")
    args = parser.parse_args()
    if args.queue:
        budgets = {
            FLOAT32_STEPS: args.float32_steps,
            REFERENCE_STEPS: args.reference_steps,
            N_CRITIC_STEPS: args.n_critic_steps,
            MULTI_SCALE_STEPS: args.multi_scale_steps,
            PROGRESSIVE_STEPS: args.progressive_steps,
            SHORT_STEPS: args.short_steps,
            RESNET_STEPS: args.resnet_steps,
        }
        for command in queue_commands(args.queue, args.seeds, args.prefix, budgets):
            print(" ".join(command))
            if not args.dry_run:
                subprocess.run(command, check=True)
        return
    groups = defaultdict(list)
    for row in finished(args.prefix):
        groups[lever_of(row, args.prefix)].append(row)
    if not groups:
        raise SystemExit(f"no finished experiments named {args.prefix}*: queue and run them first")
    print_table(groups)


if __name__ == "__main__":
    main()
