"""Runs side by side at equal updates: the quality rows of several runs, step by step.

    python -m benchmarks.lever_table default=docs/quality_curve.csv \
        consistency=../runs/cr/quality.csv --steps 500 1000 1500

Each ``name=path`` is a run's quality curve (``plots/train/quality.csv``, or the rows that
``benchmarks.quality_curve --csv`` wrote). For every step asked, each run that has a row there
prints one line of the scores ``benchmarks.quality_curve`` shows; a step a run lacks is left
out of its lines.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.quality_curve import SHOWN, numeric_rows


def curve(path: Path) -> dict[int, dict[str, float]]:
    """A quality CSV's rows keyed by step."""
    return {int(row["step"]): row for row in numeric_rows(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="name=path of a run's quality CSV")
    parser.add_argument("--steps", type=int, nargs="+", required=True)
    args = parser.parse_args()
    curves = {}
    for run in args.runs:
        name, _, path = run.partition("=")
        if not path:
            raise SystemExit(f"{run!r}: give each run as name=path/to/quality.csv")
        curves[name] = curve(Path(path))
    width = max(len(name) for name in curves)
    print(f"{'update':>6}  {'run':<{width}}  " + "  ".join(f"{key:>10.10}" for key in SHOWN))
    for step in args.steps:
        for name, rows in curves.items():
            if step in rows:
                values = "  ".join(f"{rows[step].get(key, float('nan')):>10.4g}" for key in SHOWN)
                print(f"{step:>6}  {name:<{width}}  {values}")


if __name__ == "__main__":
    main()
