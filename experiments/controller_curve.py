"""Redraw the learning curve of a controller run stopped early (``curve.csv`` and ``curve.png``).

    python experiments/controller_curve.py runs/controller/synthetic-seed0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.controller.curve import curve_from_run
from agents.training.cli import HelpFormatter, exit_on_errors


def main(argv: list[str] | None = None) -> list[Path]:
    """Rebuild the curve of the run folder named by ``argv``; prints and returns the files written."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("run_dir", type=Path, help="the --out-dir of an experiments/rllib_controller.py run")
    args = parser.parse_args(argv)
    try:
        written = curve_from_run(args.run_dir)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    with exit_on_errors():
        main()
