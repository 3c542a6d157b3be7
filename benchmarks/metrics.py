"""Wall-clock time of FID, KID and precision/recall on random features.

    python -m benchmarks.metrics --num 10000 --dim 2048

Target: FID from two 10,000 × 2048 feature sets (statistics included) in under 5 s.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from sagan.evaluation.metrics import (
    frechet_distance,
    gaussian_statistics,
    kernel_inception_distance,
    precision_recall,
)


def timed(function: Callable[[], object]) -> float:
    """Seconds one call of ``function`` takes."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=10000, help="feature vectors per side")
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension")
    parser.add_argument("--pr-num", type=int, default=5000, help="vectors per side for P/R")
    parser.add_argument("--kid-subset-size", type=int, default=1000)
    parser.add_argument("--kid-subsets", type=int, default=100)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    real = rng.standard_normal((args.num, args.dim), dtype=np.float32)
    fake = rng.standard_normal((args.num, args.dim), dtype=np.float32) + 0.1

    def fid() -> float:
        return frechet_distance(gaussian_statistics(real), gaussian_statistics(fake))

    def kid() -> tuple[float, float]:
        return kernel_inception_distance(real, fake, args.kid_subset_size, args.kid_subsets, seed=0)

    def pr() -> tuple[float, float]:
        return precision_recall(real[: args.pr_num], fake[: args.pr_num], k=3)

    shape = f"{args.num} x {args.dim} per side"
    print(f"FID ({shape}, statistics included): {timed(fid):.2f} s")
    print(f"KID ({args.kid_subsets} subsets of {args.kid_subset_size}): {timed(kid):.2f} s")
    print(f"precision/recall (k=3, {args.pr_num} x {args.dim} per side): {timed(pr):.2f} s")


if __name__ == "__main__":
    main()
