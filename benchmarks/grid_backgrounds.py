"""The background colours of a run's training grids, grid by grid: when a mode goes.

    python -m benchmarks.grid_backgrounds plots/train/samples [another run's samples ...]

Training draws the same fixed-noise faces every ``train.sample_every`` updates
(``plots/train/samples/step_*.png``, 64 faces). Each face's background is read from its
pixels (:mod:`sagan.evaluation.backgrounds`: exact for the synthetic faces, "mixed" where the
four patches disagree), so a dropped colour shows as a column of zeros from some update on.
The real faces hold each colour about a quarter of the time.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from PIL import Image

from sagan.data.synthetic import BACKGROUND_NAMES
from sagan.evaluation.backgrounds import UNSURE, read_backgrounds

GRID_NAME = re.compile(r"step_(\d+)\.png")


def grid_faces(path: Path, tile: int) -> np.ndarray:
    """The (N, tile, tile, 3) faces of one grid image, row by row."""
    image = np.asarray(Image.open(path).convert("RGB"))
    rows, columns = image.shape[0] // tile, image.shape[1] // tile
    tiles = image[: rows * tile, : columns * tile].reshape(rows, tile, columns, tile, 3)
    return tiles.transpose(0, 2, 1, 3, 4).reshape(rows * columns, tile, tile, 3)


def background_counts(faces: np.ndarray) -> dict[str, int]:
    """How many faces read as each colour, and as mixed."""
    read = read_backgrounds(faces)
    counts = {name: int((read == index).sum()) for index, name in enumerate(BACKGROUND_NAMES)}
    return counts | {"mixed": int((read == UNSURE).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="plots/train/samples of runs")
    parser.add_argument("--tile", type=int, default=64, help="face size in the grids (px)")
    parser.add_argument("--last", type=int, default=None, help="only grids up to this update")
    args = parser.parse_args()
    for folder in args.folders:
        grids = sorted(
            (int(match.group(1)), path)
            for path in folder.glob("step_*.png")
            if (match := GRID_NAME.fullmatch(path.name))
        )
        if not grids:
            raise SystemExit(f"no step_*.png grids in {folder}")
        print(f"{folder}:")
        print(f"  {'update':>7} " + " ".join(f"{name:>6}" for name in [*BACKGROUND_NAMES, "mixed"]))
        for step, path in grids:
            if args.last is not None and step > args.last:
                break
            counts = background_counts(grid_faces(path, args.tile))
            print(f"  {step:>7} " + " ".join(f"{count:>6}" for count in counts.values()))


if __name__ == "__main__":
    main()
