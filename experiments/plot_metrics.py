"""Curves of a training run: chosen columns of its ``metrics.csv`` against the step, as one PNG.

    python experiments/plot_metrics.py runs/sft/smollm2/metrics.csv --keys train/loss --out sft_loss.png
    python experiments/plot_metrics.py runs/grpo/smollm2/metrics.csv \\
        --keys rollout/reward eval/em --out grpo_reward.png

One panel per key. Rows without a value for a key (an evaluation logged only every few steps) are
skipped for that key, so sparse and dense metrics share the figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import HelpFormatter, exit_on_errors
from agents.training.curves import plot_curves, read_curves


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("metrics_csv", help="a run's metrics.csv (written by agents/training/tracking.py)")
    parser.add_argument("--keys", nargs="+", required=True, help="columns to draw, one panel each")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--title", default=None, help="figure title")
    args = parser.parse_args(argv)
    if not Path(args.metrics_csv).is_file():
        parser.error(f"{args.metrics_csv}: no such file; pass a run's metrics.csv")
    try:
        curves = read_curves(args.metrics_csv, args.keys)
    except KeyError as problem:
        parser.error(str(problem.args[0]))
    return plot_curves(curves, args.out, args.title or "")


if __name__ == "__main__":
    with exit_on_errors():
        print(main())
