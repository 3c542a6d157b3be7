"""Throughput of the synthetic face renderer over a process pool, as prepare uses it.

    python -m benchmarks.synthetic_faces --num 20000 --workers 2

Target: 20,000 faces at 64x64 in under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from multiprocessing import Pool

from sagan.data.synthetic import render_face


def benchmark(num: int, workers: int, image_size: int, seed: int = 0) -> float:
    """Render faces 0..num-1 over ``workers`` processes; return the wall-clock seconds."""
    render = functools.partial(render_face, seed, image_size=image_size)
    start = time.perf_counter()
    with Pool(workers) as pool:
        # The images travel back to the parent, as they do in prepare.
        for _ in pool.imap(render, range(num), chunksize=256):
            pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=20000, help="faces to render")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes")
    parser.add_argument("--image-size", type=int, default=64, help="side in pixels")
    args = parser.parse_args()
    seconds = benchmark(args.num, args.workers, args.image_size)
    print(
        f"{args.num} faces at {args.image_size}x{args.image_size} on {args.workers} workers: "
        f"{seconds:.1f} s, {args.num / seconds:.0f} images/s"
    )


if __name__ == "__main__":
    main()
