"""Figures of self-attention: map overlays (the SAGAN paper's style) and γ/σ curves.

Each overlay figure has one row per face (or per training step) and one column per query
point: the face with the query's attention map laid over it, hot where the query draws
most of its value from, and the query point marked in its colour. The first column shows
every query point on the bare face.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

from sagan.files import atomic_path

# The reference reports γ growing from 0 to roughly this range over training.
EXPECTED_GAMMA = (0.1, 0.3)
QUERY_COLOURS = ("#00e5ff", "#ffea00", "#76ff03", "#ff4081", "#ffffff", "#ff9100")
_CELL_INCHES = 1.45


def overlay_figure(
    images: np.ndarray,
    maps: np.ndarray,
    queries: dict[str, tuple[float, float]],
    row_labels: list[str],
    title: str,
) -> Figure:
    """uint8 images (R, S, S, 3) with query maps (R, Q, k, k) → a R × (1 + Q) grid."""
    rows, size = len(images), images.shape[1]
    columns = 1 + len(queries)
    figure = Figure(figsize=(columns * _CELL_INCHES, rows * _CELL_INCHES + 0.5))
    axes = figure.subplots(rows, columns, squeeze=False)
    names = list(queries)
    for row in range(rows):
        axes[row, 0].imshow(images[row])
        axes[row, 0].set_ylabel(row_labels[row], fontsize=8)
        for index, name in enumerate(names):
            _mark(axes[row, 0], queries[name], size, QUERY_COLOURS[index % len(QUERY_COLOURS)])
            axis = axes[row, 1 + index]
            axis.imshow(images[row])
            # Nearest-neighbour upsampling keeps the key cells visible as the map's pixels.
            cells = maps[row, index] / maps[row, index].max()
            axis.imshow(
                cells,
                cmap="inferno",
                alpha=0.65,
                extent=(0, size, size, 0),
                interpolation="nearest",
                vmin=0.0,
                vmax=1.0,
            )
            _mark(axis, queries[name], size, QUERY_COLOURS[index % len(QUERY_COLOURS)])
            if row == 0:
                axis.set_title(name, fontsize=9)
    axes[0, 0].set_title("queries", fontsize=9)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def _mark(axis: Axes, point: tuple[float, float], size: int, colour: str) -> None:
    row, column = point
    axis.plot(
        column * size,
        row * size,
        "o",
        markersize=5,
        color=colour,
        markeredgecolor="black",
        markeredgewidth=0.8,
    )


def curves_figure(history_csv: Path) -> Figure:
    """γ of each attention layer (with the expected range shaded) and σ of each SN layer."""
    with Path(history_csv).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    steps = [int(row["step"]) for row in rows]
    columns = list(rows[0]) if rows else []
    figure = Figure(figsize=(11, 4))
    gamma_axis, sigma_axis = figure.subplots(1, 2)
    gamma_axis.axhspan(
        *EXPECTED_GAMMA,
        color="tab:green",
        alpha=0.15,
        label=f"reference's range {EXPECTED_GAMMA[0]}–{EXPECTED_GAMMA[1]}",
    )
    for name in (c for c in columns if c.startswith("gamma_")):
        gamma_axis.plot(steps, _column(rows, name), label=name.removeprefix("gamma_"))
    if not any(c.startswith("gamma_") for c in columns):
        gamma_axis.text(
            0.5, 0.5, "no self-attention in this model", ha="center", transform=gamma_axis.transAxes
        )
    gamma_axis.axhline(0.0, color="grey", linewidth=0.8)
    _label(gamma_axis, "Self-attention gate γ", "γ")
    for name in (c for c in columns if c.startswith("sigma_")):
        sigma_axis.plot(steps, _column(rows, name), label=name.removeprefix("sigma_"))
    _label(sigma_axis, "Top singular value σ of each raw kernel (spectral norm divides by it)", "σ")
    figure.tight_layout()
    return figure


def _column(rows: list[dict[str, str]], name: str) -> list[float]:
    return [float(row[name]) if row.get(name) not in (None, "") else np.nan for row in rows]


def _label(axis: Axes, title: str, y_label: str) -> None:
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("generator update")
    axis.set_ylabel(y_label)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7)


def save_figure(figure: Figure, path: Path) -> None:
    """Write ``figure`` as PNG, atomically."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
