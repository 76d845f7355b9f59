"""The learning curve of a controller run: ``curve.csv`` and ``curve.png`` (small enough for docs/).

``rllib_controller.py`` writes them when it finishes; for a run stopped early, rebuild them from
the run folder's ``metrics.csv`` and ``baselines.json``::

    python experiments/controller_curve.py runs/controller/synthetic-seed0
"""

from __future__ import annotations

import csv
import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CURVE_COLUMNS = ("iteration", "env_steps", "train_return", "eval_em")


def curve_rows(rows: Sequence[Mapping[str, float]]) -> list[dict[str, Any]]:
    """One row per iteration: env steps so far, mean training return, held-out EM (blank when not run)."""
    return [{
        "iteration": int(row["iteration"]),
        "env_steps": int(row["train/env_steps"]),
        "train_return": round(row["train/episode_return_mean"], 4),
        "eval_em": round(row["eval/em"], 4) if "eval/em" in row else "",
    } for row in rows]


def write_curve(rows: Sequence[Mapping[str, float]], baselines: Mapping[str, float], out_dir: Path,
                label: str = "") -> list[Path]:
    """Write ``curve.csv`` (with the baselines as ``# name: em`` lines at the top) and ``curve.png``.

    ``label`` names the run (see :func:`run_label`): a ``# run: ...`` line above the baselines and the
    plot's subtitle.

    Returns:
        The paths written (the PNG is skipped, with a warning, where matplotlib is missing).
    """
    out_dir = Path(out_dir)
    table = curve_rows(rows)
    csv_path = out_dir / "curve.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        if label:
            handle.write(f"# run: {label}\n")
        for name, em in sorted(baselines.items()):
            handle.write(f"# held-out EM of {name}: {em:.4f}\n")
        writer = csv.DictWriter(handle, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        import logging

        logging.getLogger(__name__).warning("matplotlib is missing: curve.png skipped (pip install matplotlib).")
        return [csv_path]
    return [csv_path, _plot(plt, table, baselines, out_dir / "curve.png", label)]


def run_label(config: Mapping[str, Any]) -> str:
    """What the curve is of, from a run's arguments (``config.json``): env id, options, seed."""
    options = json.loads(config.get("env_kwargs") or "{}")
    text = config.get("env_id", "AtomMem-Synthetic-v0") + (f" {json.dumps(options)}" if options else "")
    return f"{text}, seed {config.get('seed', 0)}"


def _plot(plt: Any, table: list[dict[str, Any]], baselines: Mapping[str, float], path: Path, label: str) -> Path:
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    steps = [r["env_steps"] for r in table]
    ax.plot(steps, [r["train_return"] for r in table], color="tab:blue", alpha=0.6,
            label="PPO training return (sampling policy)")
    evaluated = [r for r in table if r["eval_em"] != ""]
    ax.plot([r["env_steps"] for r in evaluated], [r["eval_em"] for r in evaluated], color="tab:blue",
            marker="o", label="PPO greedy, held-out EM")
    styles = iter(["--", ":", "-.", (0, (5, 1)), (0, (1, 3))])
    for name, em in sorted(baselines.items(), key=lambda item: -item[1]):
        if not math.isnan(em):
            kind = "random applicable macros" if name == "random" else f"{name} (static)"
            ax.axhline(em, linestyle=next(styles, "--"), color="gray" if name == "random" else "tab:red",
                       alpha=0.8, label=f"{kind}, held-out EM {em:.2f}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("reward = exact match")
    values = [r["train_return"] for r in table] + [r["eval_em"] for r in evaluated] + list(baselines.values())
    ax.set_ylim(0.0, max([0.5] + [v for v in values if not math.isnan(v)]) + 0.05)
    ax.set_title("\n".join(["Learned memory controller vs static workflows", *textwrap.wrap(label, 80)]),
                 fontsize=9 if label else None)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def curve_from_run(run_dir: Path) -> list[Path]:
    """Rebuild ``curve.csv`` / ``curve.png`` of a run folder from its ``metrics.csv`` and ``baselines.json``
    (labelled from its ``config.json`` where there is one).

    Raises:
        FileNotFoundError: the folder lacks one of the two files (it is not a controller run).
    """
    run_dir = Path(run_dir)
    missing = [name for name in ("metrics.csv", "baselines.json") if not (run_dir / name).exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir} has no {' or '.join(missing)}: pass a rllib_controller.py --out-dir.")
    with open(run_dir / "metrics.csv", encoding="utf-8") as handle:
        rows = [{"iteration": int(row["step"]), **{k: float(v) for k, v in row.items() if v and k != "step"}}
                for row in csv.DictReader(handle)]
    baselines = json.loads((run_dir / "baselines.json").read_text(encoding="utf-8"))
    config = run_dir / "config.json"
    label = run_label(json.loads(config.read_text(encoding="utf-8"))) if config.exists() else ""
    return write_curve(rows, baselines, run_dir, label)
