"""Curves of a training run: chosen columns of a Tracker ``metrics.csv`` against the step, as one PNG
(``experiments/plot_metrics.py`` is the command line)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from agents.training.plots import pyplot


def read_curves(csv_path: str | Path, keys: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """``{key: [(step, value), ...]}`` from a Tracker ``metrics.csv``; raises ``KeyError`` naming a missing key."""
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        columns = reader.fieldnames or []
    missing = [key for key in keys if key not in columns]
    if missing:
        raise KeyError(f"{csv_path} has no column {', '.join(missing)}; it has: {', '.join(columns)}")
    return {key: [(int(row["step"]), float(row[key])) for row in rows if row.get(key)] for key in keys}


def plot_curves(curves: dict[str, list[tuple[int, float]]], path: str | Path, title: str = "") -> Path:
    """Write one panel per curve (step on x) to ``path`` and return it."""
    plt = pyplot()
    fig, axes = plt.subplots(len(curves), 1, figsize=(6.5, 2.4 * len(curves) + 0.6), sharex=True, squeeze=False)
    for ax, (key, points) in zip(axes[:, 0], curves.items(), strict=True):
        ax.plot([s for s, _ in points], [v for _, v in points], marker="o" if len(points) < 30 else None)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)

