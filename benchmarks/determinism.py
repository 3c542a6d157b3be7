"""What TensorFlow's op determinism costs: train step and encoder training, on and off.

``tf.config.experimental.enable_op_determinism()`` is process-global and cannot be undone,
so each measurement runs in a fresh worker process. The two settings take turns, round by
round (off, on, off, on, …), so a burst of load from elsewhere hits both; the figures are
medians over the rounds, and the ratio is taken round by round. Usage:

    python -m benchmarks.determinism [--rounds 3] [--steps 40] [--encoder-steps 300]

The train step is params.yaml's (model, train settings, batch) on random batches; the
encoder trains ``--encoder-steps`` steps of params.yaml's encoder on random labelled images
(its time includes one trace, the same in both settings).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

WORKLOADS = ("train", "encoder")


def train_rate(steps: int) -> float:
    """Images/s of params.yaml's train step on random batches."""
    from benchmarks.train_step import images_per_second, random_batches
    from sagan.config import load_config
    from sagan.training.settings import resolve_settings
    from sagan.training.step import GANTrainer

    config = load_config()
    batch = config.train.batch_size
    trainer = GANTrainer(resolve_settings(config))
    iterator = random_batches(batch, config.data.image_size)
    images_per_second(trainer.train_step, iterator, batch, 3)  # trace and warm up
    return images_per_second(trainer.train_step, iterator, batch, steps)


def encoder_rate(steps: int) -> float:
    """Images/s of params.yaml's encoder training on random labelled images."""
    import tensorflow as tf

    from sagan.config import load_config
    from sagan.evaluation.features import build_encoder, train_encoder

    config = load_config()
    size, settings = config.data.image_size, config.encoder
    classes = {"a": 2, "b": 4}
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (512, size, size, 3)).astype("float32")
    labels = np.stack([rng.integers(0, n, 512) for n in classes.values()], axis=1)
    examples = tf.data.Dataset.from_tensor_slices((images, labels))
    encoder = build_encoder(size, classes, settings.feature_dim, settings.seed)
    started = time.perf_counter()
    train_encoder(encoder, examples, steps, settings.seed, settings.batch_size)
    return steps * settings.batch_size / (time.perf_counter() - started)


def worker(workload: str, deterministic: bool, steps: int) -> None:
    """One measurement in this process; prints its images/s as JSON."""
    import tensorflow as tf

    if deterministic:
        tf.config.experimental.enable_op_determinism()
    rate = train_rate(steps) if workload == "train" else encoder_rate(steps)
    print(json.dumps({"images_per_second": rate}))


def measure(workload: str, deterministic: bool, steps: int) -> float:
    command = [sys.executable, "-m", "benchmarks.determinism", "--worker", workload, "--steps"]
    command += [str(steps)] + (["--deterministic"] if deterministic else [])
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40, help="timed train steps per worker")
    parser.add_argument("--encoder-steps", type=int, default=300)
    parser.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--deterministic", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.deterministic, args.steps)
        return
    for workload, steps in (("train", args.steps), ("encoder", args.encoder_steps)):
        rates = {False: [], True: []}
        for _ in range(args.rounds):
            for deterministic in rates:
                rates[deterministic].append(measure(workload, deterministic, steps))
        ratios = np.array(rates[True]) / np.array(rates[False])
        print(
            f"{workload}: op determinism off {np.median(rates[False]):.1f}, on "
            f"{np.median(rates[True]):.1f} images/s; on/off {np.median(ratios):.3f} "
            f"(rounds {', '.join(f'{r:.3f}' for r in ratios)})"
        )


if __name__ == "__main__":
    main()
