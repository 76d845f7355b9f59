"""Curves of training runs: chosen columns of their ``metrics.csv`` against the step, as one PNG.

    python experiments/plot_metrics.py runs/sft/smollm2/metrics.csv --keys train/loss --out sft_loss.png
    python experiments/plot_metrics.py runs/grpo/seed0/metrics.csv runs/grpo/seed1/metrics.csv \\
        --labels "seed 0" "seed 1" --keys rollout/reward eval/em rollout/flat_groups --smooth 5 --out grpo.png

One panel per key, one line per file (several runs, e.g. seeds, share each panel). Rows without a value
for a key (an evaluation logged only every few steps) are skipped for that key, so sparse and dense
metrics share the figure. A key whose ``<key>_lo`` and ``<key>_hi`` columns exist (``eval/em``: its 95 %
interval clustered by episode) is drawn with that band. ``--smooth N`` draws a moving average over N
logged points over the faint raw values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import HelpFormatter, exit_on_errors
from agents.training.curves import plot_curves, read_bands, read_curves


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags, with the files and labels checked (a bad one exits with a message)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("metrics_csv", nargs="+", help="runs' metrics.csv files (from agents/training/tracking.py)")
    parser.add_argument("--keys", nargs="+", required=True, help="columns to draw, one panel each")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--labels", nargs="+", default=None, help="one legend label per file; default: its folder")
    parser.add_argument("--smooth", type=int, default=1, help="moving average over this many logged points")
    parser.add_argument("--title", default=None, help="figure title")
    args = parser.parse_args(argv)
    for path in args.metrics_csv:
        if not Path(path).is_file():
            parser.error(f"{path}: no such file; pass a run's metrics.csv")
    if args.labels is not None and len(args.labels) != len(args.metrics_csv):
        parser.error(f"--labels: {len(args.labels)} labels for {len(args.metrics_csv)} files; give one per file.")
    if args.smooth < 1:
        parser.error(f"--smooth {args.smooth}: need at least 1 (1 draws the raw values).")
    args.labels = args.labels or [Path(path).parent.name or path for path in args.metrics_csv]
    if len(set(args.labels)) < len(args.labels):
        parser.error(f"labels {args.labels} repeat; name each run with --labels.")
    args.error = parser.error
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    try:
        runs = {label: read_curves(path, args.keys) for label, path in zip(args.labels, args.metrics_csv, strict=True)}
        bands = {label: read_bands(path, args.keys) for label, path in zip(args.labels, args.metrics_csv, strict=True)}
    except KeyError as problem:
        args.error(str(problem.args[0]))
    return plot_curves(runs, args.out, args.title or "", bands=bands, smooth=args.smooth)


if __name__ == "__main__":
    with exit_on_errors():
        print(main())
