"""Figures of an evaluation run: per-turn operation rates and EM against the number of documents.

Both functions take the results rows of ``experiments/evaluate.py`` (one dict per env id, with the
keys of :func:`agents.training.evaluation.results_row`) and write a PNG. matplotlib is imported lazily so
that the environments and the evaluation tables work without it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import atommem_env
from agents.training.metrics import OP_RATE_KEYS

_ENV_ID = re.compile(r"^AtomMem-(?P<series>.+?)(?:-\d+)?-v\d+$")


def pyplot() -> Any:
    """Return ``matplotlib.pyplot`` on the headless Agg backend, or explain how to get it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "Plots need matplotlib, which is not installed: `pip install matplotlib` "
            "(or install the project's `eval` extra), or pass --no-plots to evaluate.py."
        ) from None
    matplotlib.use("Agg")  # no display on servers and CI; must be chosen before pyplot is imported
    import matplotlib.pyplot as plt

    return plt


def plot_point(row: dict[str, Any]) -> tuple[str, int]:
    """Where a results row goes on the EM-by-documents plot: its series and its documents per episode.

    The series is the env id without ``AtomMem-``, the size and the version (``HotpotQA``,
    ``MemAgent-MuSiQue``, ``Synthetic``); the documents are the episodes' own
    (:func:`atommem_env.documents_per_episode` of the id and the row's ``env_options``), so Synthetic
    sits at its 40 documents, or at the ``num_documents`` it was run with.

    Raises:
        ValueError: the row's id is not a registered AtomMem id.
    """
    env_id = row["env_id"]
    match = _ENV_ID.match(env_id)
    if match is None or env_id not in atommem_env.registered_ids():
        raise ValueError(f"{env_id!r} is not a registered AtomMem id (AtomMem-<Benchmark>[-<documents>]-v0).")
    options = row.get("env_options") or {}
    options = json.loads(options) if isinstance(options, str) else options
    return match["series"], atommem_env.documents_per_episode(env_id, options)


def plot_ops_per_turn(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Grouped bars: per-turn Create / Read / Update / Delete / scratchpad rates for each env id.

    Args:
        rows: results rows with ``env_id`` and ``{op}_per_turn`` keys.
        path: the PNG to write.

    Returns:
        ``path``.
    """
    plt = pyplot()
    labels = [row["env_id"].removeprefix("AtomMem-") for row in rows]
    width = 0.8 / len(OP_RATE_KEYS)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(rows) + 2), 4.5))
    for k, key in enumerate(OP_RATE_KEYS):
        xs = [i + (k - (len(OP_RATE_KEYS) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(xs, [row.get(f"{key}_per_turn", 0.0) for row in rows], width, label=key.capitalize())
    rotate = len(rows) > 3  # long ids collide when there are many groups
    ax.set_xticks(range(len(rows)), labels, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    ax.set_ylabel("operations per turn")
    ax.set_title(f"Memory operations per turn ({_policies(rows)})", pad=28)
    # Above the axes: below them it would collide with rotated tick labels, inside with tall bars.
    ax.legend(ncols=len(OP_RATE_KEYS), fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_em_by_documents(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """One line per benchmark: EM against the documents per episode (:func:`plot_point`), on a log axis.

    A benchmark with a single size (such as Synthetic) shows up as a single marker. When two rows
    map to the same point (``AtomMem-HotpotQA-v0`` and ``AtomMem-HotpotQA-200-v0``) the later wins.

    Args:
        rows: results rows with ``env_id`` and ``em`` keys.
        path: the PNG to write.

    Returns:
        ``path``.
    """
    plt = pyplot()
    series: dict[str, dict[int, float]] = {}
    for row in rows:
        if "em" not in row:  # an env id with no episodes has no EM to draw
            continue
        name, documents = plot_point(row)
        series.setdefault(name, {})[documents] = row["em"]
    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    for name, points in series.items():
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], marker="o", label=name)
    sizes = sorted({x for points in series.values() for x in points})
    if sizes:  # a log axis keeps 40 and 200 / 400 / 800 apart and spaces the doublings evenly
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(sizes, [str(x) for x in sizes])
    ax.set_xlabel("documents per episode")
    ax.set_ylabel("exact match")
    ax.set_ylim(0.0, 1.0)
    ax.set_title(f"EM by context length ({_policies(rows)})")
    if series:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write ``ops_per_turn.png`` and ``em_by_documents.png`` into ``out_dir`` and return their paths."""
    out_dir = Path(out_dir)
    return [
        plot_ops_per_turn(rows, out_dir / "ops_per_turn.png"),
        plot_em_by_documents(rows, out_dir / "em_by_documents.png"),
    ]


def _policies(rows: Sequence[dict[str, Any]]) -> str:
    return ", ".join(sorted({str(row.get("policy", "?")) for row in rows}))
