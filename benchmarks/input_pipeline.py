"""Throughput of the tf.data input pipeline over prepared shards (training settings).

    python -m benchmarks.input_pipeline --data-dir data/prepared --batch-size 64

Target: at least 20,000 images/s of 64x64 on 2 CPU cores. Run `dvc repro prepare` first.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time

from tqdm import tqdm

from sagan.data.pipeline import make_dataset

log = logging.getLogger("benchmarks.input_pipeline")


def benchmark(data_dir: str, batch_size: int, batches: int, with_labels: bool) -> float:
    """Images per second over ``batches`` batches, after a warm-up that fills the buffers."""
    dataset = make_dataset(data_dir, "train", batch_size, with_labels=with_labels)
    iterator = iter(dataset)
    for _ in range(50):
        next(iterator)
    start = time.perf_counter()
    for _ in tqdm(range(batches), desc="batches", unit="batch"):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data/prepared")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=3000)
    parser.add_argument("--with-labels", action="store_true")
    args = parser.parse_args()
    rate = benchmark(args.data_dir, args.batch_size, args.batches, args.with_labels)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info("input pipeline: %.0f images/s, peak RSS %.0f MiB", rate, peak_mib)


if __name__ == "__main__":
    main()
