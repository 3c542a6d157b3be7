"""Speed of the generate stage on the default 64×64 generator: images/s.

Prints the generator alone (batched, traced once) and with PNG encoding, as the stage
writes them. One forward pass is ≈0.17 GFLOP per image. Usage:

    python -m benchmarks.generate [--num 2000] [--batch 250]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sagan.config import ModelConfig
from sagan.model.networks import build_generator
from sagan.sampling.faces import sample_images
from sagan.sampling.grids import save_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=250)
    args = parser.parse_args()
    generator = build_generator(ModelConfig())
    for _ in sample_images(generator, args.batch, seed=1, batch_size=args.batch):
        pass  # trace once, outside the timing

    started = time.perf_counter()
    for _ in sample_images(generator, args.num, seed=0, batch_size=args.batch):
        pass
    alone = args.num / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        index = 0
        for batch in sample_images(generator, args.num, seed=0, batch_size=args.batch):
            for image in batch:
                save_png(image, Path(directory) / f"{index:06d}.png")
                index += 1
        with_png = args.num / (time.perf_counter() - started)
    print(f"generator alone:     {alone:7.1f} images/s (batch {args.batch})")
    print(f"with PNG encoding:   {with_png:7.1f} images/s")


if __name__ == "__main__":
    main()
