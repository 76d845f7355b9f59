"""Compare learned controllers with the static workflows built from the same macro-actions, with paired tests.

    python experiments/controller_compare.py --episodes 200                           # workflows + random
    python experiments/controller_compare.py --episodes 1000 --out-dir runs/controller/compare \\
        --checkpoint runs/controller/synthetic-seed{0,1,2,3,4}/final                 # one per training seed
    python experiments/controller_compare.py --from-episodes docs/controller/synthetic/episodes.csv \\
        --out-dir runs/controller/retest                                               # redo the tests only

Every policy plays the same episodes of each env id (episode i with seed ``seed + i``). Synthetic ids
use the held-out ``seed_salt`` family that ``rllib_controller.py`` evaluates on; real ids use the
benchmark's dev episodes. Prints a Markdown table (EM with its 95 % interval clustered by episode, F1,
turns, per-turn Create / Read / Update / Delete / scratchpad rates, store size, invalid actions, and the
share of turns per macro) and the paired tests of each learned controller (``learned:<run folder>``)
against each other policy: per seed (EM difference with a paired bootstrap interval, McNemar) and pooled
over seeds (bootstrap over episodes, t-interval over seeds). With ``--out-dir`` it writes
``results.md`` / ``results.csv``, ``episodes.csv`` (one row per policy, episode and question: the
answer, EM, F1, turns and macros), ``behaviour.md`` (how often each policy chose each macro in each
situation: reading a chunk with or without matching sentences, answering after k reads, ...),
``paired.md`` / ``paired.csv``, ``pooled.md`` / ``pooled.csv`` and ``args.json``. ``--from-episodes``
redoes the tables (EM with its interval, F1, turns, macro shares; no operation rates) and the paired tests
from one or more ``episodes.csv`` without playing, and writes them merged: play the static workflows once
and each trained controller as its training ends, then test them together.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.controller.compare import (
    BEHAVIOUR_COLUMNS,
    COLUMNS,
    CompareArgs,
    behaviour_rows,
    markdown,
    play_all,
    question_records,
    summary_rows,
)
from agents.controller.significance import (
    RECORD_COLUMNS,
    pooled_table,
    read_records,
    record_summary,
    write_records,
    write_significance,
)
from agents.training.cli import exit_on_errors, parse_dataclass
from agents.training.comparison import comparison_table


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Compare (or read ``--from-episodes``), print the tables and (with ``--out-dir``) write them; returns the
    summary rows."""
    args = parse_dataclass(CompareArgs, argv, description=__doc__)
    if args.episodes < 1:
        raise SystemExit(f"--episodes must be at least 1, got {args.episodes}.")
    out = Path(args.out_dir) if args.out_dir else None
    habits: list[dict[str, Any]] = []
    with exit_on_errors():
        if args.from_episodes:
            records = [r for path in args.from_episodes for r in read_records(path)]
            rows, columns = record_summary(records, args.resamples), RECORD_COLUMNS
        else:
            played = play_all(args)
            records, habits = question_records(played), behaviour_rows(played)
            rows, columns = summary_rows(played, args.resamples), COLUMNS
        per_seed, pooled = write_significance(records, out, args.resamples)
    print(markdown(rows, columns))
    print(comparison_table(per_seed) if per_seed else "(no learned controller: no paired tests)")
    if pooled:
        print(pooled_table(pooled))
    if out:
        (out / "results.md").write_text(markdown(rows, columns) + "\n", encoding="utf-8")
        with open(out / "results.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        write_records(records, out / "episodes.csv")
        if habits:
            (out / "behaviour.md").write_text(markdown(habits, BEHAVIOUR_COLUMNS) + "\n", encoding="utf-8")
        (out / "args.json").write_text(json.dumps(vars(args), indent=2) + "\n", encoding="utf-8")
    return rows


if __name__ == "__main__":
    with exit_on_errors():
        main()
