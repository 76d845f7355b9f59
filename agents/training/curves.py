"""Curves of training runs: chosen columns of Tracker ``metrics.csv`` files against the step, as one PNG
(``experiments/plot_metrics.py`` is the command line). Several runs (seeds) share each panel; a column
with ``<key>_lo`` and ``<key>_hi`` companions (the held-out EM's 95 % interval) is drawn with its band."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from agents.training.plots import pyplot

Points = list[tuple[int, float]]
Bands = list[tuple[int, float, float]]


def read_rows(csv_path: str | Path, keys: Sequence[str]) -> tuple[list[dict[str, str]], list[str]]:
    """The rows and columns of a Tracker ``metrics.csv``; raises ``KeyError`` naming a missing key."""
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    missing = [key for key in keys if key not in columns]
    if missing:
        raise KeyError(f"{csv_path} has no column {', '.join(missing)}; it has: {', '.join(columns)}")
    return rows, columns


def read_curves(csv_path: str | Path, keys: Sequence[str]) -> dict[str, Points]:
    """``{key: [(step, value), ...]}`` from a Tracker ``metrics.csv``; raises ``KeyError`` naming a missing key.
    Rows without a value for a key (an evaluation logged every few steps) are skipped for that key."""
    rows, _ = read_rows(csv_path, keys)
    return {key: [(int(row["step"]), float(row[key])) for row in rows if row.get(key)] for key in keys}


def read_bands(csv_path: str | Path, keys: Sequence[str]) -> dict[str, Bands]:
    """``{key: [(step, lo, hi), ...]}`` for each key of ``keys`` whose ``<key>_lo`` and ``<key>_hi`` columns exist."""
    rows, columns = read_rows(csv_path, keys)
    return {key: [(int(row["step"]), float(row[f"{key}_lo"]), float(row[f"{key}_hi"]))
                  for row in rows if row.get(f"{key}_lo") and row.get(f"{key}_hi")]
            for key in keys if f"{key}_lo" in columns and f"{key}_hi" in columns}


def moving_average(points: Points, window: int) -> Points:
    """Each value replaced by the mean of the last ``window`` values up to it (fewer at the start)."""
    values = [v for _, v in points]
    return [(step, sum(values[max(0, i + 1 - window):i + 1]) / min(window, i + 1))
            for i, (step, _) in enumerate(points)]


def plot_curves(runs: dict[str, dict[str, Points]], path: str | Path, title: str = "",
                bands: dict[str, dict[str, Bands]] | None = None, smooth: int = 1) -> Path:
    """Write one panel per key (step on x), one line per run (``{label: {key: points}}``, every run with
    the same keys), to ``path`` and return it. ``bands`` (same labels) shades intervals; ``smooth`` > 1
    draws a moving average over that many logged points, over the raw values drawn faintly."""
    plt = pyplot()
    keys = list(next(iter(runs.values())))
    fig, axes = plt.subplots(len(keys), 1, figsize=(6.5, 2.4 * len(keys) + 0.6), sharex=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes[:, 0], keys, strict=True):
        for i, (label, curves) in enumerate(runs.items()):
            color, points = colors[i % len(colors)], curves[key]
            band = (bands or {}).get(label, {}).get(key)
            if band:
                ax.fill_between([s for s, _, _ in band], [lo for _, lo, _ in band], [hi for _, _, hi in band],
                                color=color, alpha=0.15, linewidth=0)
            marker = "o" if len(points) < 30 else None
            if smooth > 1:
                ax.plot([s for s, _ in points], [v for _, v in points], color=color, alpha=0.25, linewidth=0.8)
                points = moving_average(points, smooth)
            ax.plot([s for s, _ in points], [v for _, v in points], color=color, marker=marker,
                    label=label if len(runs) > 1 else None)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    if len(runs) > 1:
        axes[0, 0].legend(fontsize="small")
    axes[-1, 0].set_xlabel("step")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
