"""Compare a learned controller with the static workflows built from the same macro-actions.

    python experiments/controller_compare.py --episodes 200                           # workflows + random
    python experiments/controller_compare.py --checkpoint runs/controller/synthetic/final \\
        --env-ids AtomMem-Synthetic-v0 AtomMem-HotpotQA-200-v0 --data-dir ../shared/data \\
        --out-dir runs/controller/compare

Every policy plays the same episodes of each env id (episode i with seed ``seed + i``). Synthetic ids
use the held-out ``seed_salt`` family that ``rllib_controller.py`` evaluates on; real ids use the
benchmark's dev episodes. Prints a Markdown table (EM, F1, turns, per-turn Create / Read / Update /
Delete / scratchpad rates, store size, invalid actions, and the share of turns per macro) and, with
``--out-dir``, writes it as ``results.md`` and ``results.csv``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.controller.compare import COLUMNS, CompareArgs, compare, markdown
from agents.training.cli import exit_on_errors, parse_dataclass


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Compare, print the table and (with ``--out-dir``) write it; returns the rows."""
    args = parse_dataclass(CompareArgs, argv, description=__doc__)
    if args.episodes < 1:
        raise SystemExit(f"--episodes must be at least 1, got {args.episodes}.")
    with exit_on_errors():
        rows = compare(args)
    table = markdown(rows)
    print(table)
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.md").write_text(table + "\n", encoding="utf-8")
        with open(out / "results.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, "reward"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        (out / "args.json").write_text(json.dumps(vars(args), indent=2) + "\n", encoding="utf-8")
    return rows


if __name__ == "__main__":
    with exit_on_errors():
        main()
