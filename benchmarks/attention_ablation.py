"""The attention ablation's table: attention on vs off, mean ± std over seeds.

Reads the finished DVC experiments of this repository (``dvc.api.exp_show``) whose names
start with ``--prefix``, groups them by ``model.attention`` and prints one Markdown row
per group: FID and KID (encoder features), the global-coherence score, training images/s
and the parameter count of G and D. Queue and run the experiments first (README,
"Attention ablation"):

    python -m benchmarks.attention_ablation [--prefix attention-] [--speed]

The runs' own images/s only compare when nothing else shares the machine; ``--speed`` also
times the train step of both models side by side in one process (params.yaml's ``train``
settings, random batches; the two take turns over five rounds, medians reported).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from collections import defaultdict

import numpy as np

from benchmarks.experiments import finished, seed, value
from benchmarks.train_step import random_batches, take_turns
from sagan.config import Config, ModelConfig, load_config
from sagan.model.networks import build_discriminator, build_generator
from sagan.training.settings import resolve_settings
from sagan.training.step import GANTrainer

# (column title, metrics file, key, format)
COLUMNS = (
    ("FID", "metrics/eval.json", "fid", "{:.0f}"),
    ("KID", "metrics/eval.json", "kid", "{:.0f}"),
    ("coherence", "metrics/eval.json", "coherence", "{:.3f}"),
    ("train images/s", "metrics/train.json", "images_per_second", "{:.0f}"),
)


def _mean_std(values: list[float], fmt: str) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(statistics.mean(values))} ± {fmt.format(spread)}"


def parameter_count(model: ModelConfig, image_size: int) -> int:
    return (
        build_generator(model, image_size).count_params()
        + build_discriminator(model, image_size).count_params()
    )


def side_by_side_speed(config, rounds: int = 5, steps: int = 10) -> dict[bool, float]:
    """Median train-step images/s with attention on and off, taking turns."""
    batch = config.train.batch_size
    steps_by_attention = {
        attention: GANTrainer(
            resolve_settings(
                dataclasses.replace(
                    config, model=dataclasses.replace(config.model, attention=attention)
                )
            )
        ).train_step
        for attention in (True, False)
    }
    iterator = random_batches(batch, config.data.image_size)
    rates = take_turns(steps_by_attention, iterator, batch, rounds, steps)
    return {attention: float(np.median(values)) for attention, values in rates.items()}


def print_table(groups: dict[bool, list[dict]], config: Config) -> None:
    """One Markdown row per attention setting: mean ± std over its experiments."""
    titles = [title for title, *_ in COLUMNS]
    print(f"| attention | seeds | {' | '.join(titles)} | parameters (G + D) |")
    print("|---" * (len(titles) + 3) + "|")
    for attention in sorted(groups, reverse=True):
        rows = groups[attention]
        seeds = ", ".join(str(seed(row)) for row in sorted(rows, key=seed))
        cells = [
            _mean_std([float(value(row, file, key)) for row in rows], fmt)
            for _, file, key, fmt in COLUMNS
        ]
        model = dataclasses.replace(config.model, attention=attention)
        params = f"{parameter_count(model, config.data.image_size):,}"
        print(f"| {'on' if attention else 'off'} | {seeds} | {' | '.join(cells)} | {params} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prefix", default="attention-", help="experiment names to include")
    parser.add_argument("--speed", action="store_true", help="also time both side by side")
    args = parser.parse_args()

    groups = defaultdict(list)
    for row in finished(args.prefix):
        # exp_show gives params as shown in its table: "True", 1.0
        groups[str(row["model.attention"]).lower() == "true"].append(row)
    config = load_config()
    if groups:
        print_table(groups, config)
    elif not args.speed:
        raise SystemExit(f"no finished experiments named {args.prefix}*: run the queue first")
    if args.speed:
        rates = side_by_side_speed(config)
        print(
            f"train step side by side ({config.train.mixed_precision}, batch "
            f"{config.train.batch_size}): attention on {rates[True]:.1f}, off {rates[False]:.1f} "
            f"images/s ({rates[False] / rates[True]:.2f}x)"
        )


if __name__ == "__main__":
    main()
