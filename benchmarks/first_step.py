"""What the first train step costs (TensorFlow traces it), with and without AutoGraph.

Our step functions are ``tf.function(..., autograph=False)``: they branch and loop on Python
values only, so AutoGraph's rewrite of every function they call (our layers, the losses,
the updates) only costs time. This times the first and the second train step of
params.yaml's model on random batches, as shipped and with AutoGraph forced back on (what
``tf.function`` does by default). Each measurement is a fresh process (a second trace in
one process is cheaper), the two take turns, and the figures are medians over the rounds:

    python -m benchmarks.first_step [--rounds 3] [--params params.yaml]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import time


def measure(params: str, autograph: bool) -> tuple[float, float]:
    """Seconds of the first and the second train step, in this process."""
    import numpy as np
    import tensorflow as tf

    if autograph:
        plain = tf.function

        def with_autograph(function=None, **options):
            options["autograph"] = True
            if function is None:
                return functools.partial(with_autograph, **options)
            return plain(function, **options)

        tf.function = with_autograph

    from sagan.config import load_config
    from sagan.training.settings import resolve_settings
    from sagan.training.step import GANTrainer

    config = load_config(params)
    batch, size = config.train.batch_size, config.data.image_size
    pixels = np.random.default_rng(0).uniform(-1, 1, (batch * 2, size, size, 3))
    batches = tf.data.Dataset.from_tensor_slices(pixels.astype("float32"))
    iterator = iter(batches.batch(batch, drop_remainder=True).repeat())
    trainer = GANTrainer(resolve_settings(config))
    seconds = []
    for update in (1, 2):
        started = time.perf_counter()
        trainer.begin_update(update, config.train.steps)
        tf.nest.map_structure(lambda t: t.numpy(), trainer.train_step(iterator))
        seconds.append(time.perf_counter() - started)
    return seconds[0], seconds[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--child", choices=["shipped", "autograph"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(*measure(args.params, args.child == "autograph"))
        return

    timings: dict[str, list[tuple[float, float]]] = {"shipped": [], "autograph": []}
    for _ in range(args.rounds):
        for variant, rows in timings.items():
            command = [sys.executable, "-m", "benchmarks.first_step", "--params", args.params]
            done = subprocess.run(
                [*command, "--child", variant], capture_output=True, text=True, check=True
            )
            rows.append(tuple(map(float, done.stdout.split()[-2:])))
    for variant, rows in timings.items():
        first = statistics.median(row[0] for row in rows)
        second = statistics.median(row[1] for row in rows)
        print(f"{variant:>9}: first step {first:.2f} s, second {second:.2f} s ({args.rounds} runs)")
    ratios = [a[0] / s[0] for s, a in zip(timings["shipped"], timings["autograph"], strict=True)]
    print(f"first step with AutoGraph / as shipped: {statistics.median(ratios):.2f}×")


if __name__ == "__main__":
    main()
