"""Every deviation measured: one policy on identical episodes under the reference protocol, under ours,
and with each of our fixes switched on alone (issue #15).

    python experiments/fidelity.py --data-dir ../shared/data --policy heuristic --out-dir runs/fidelity-heuristic
    python experiments/fidelity.py --preset paper --data-dir ../shared/data --policy always-yes --no-breakdown
    python experiments/fidelity.py --env-ids AtomMem-HotpotQA-200-v0 --policy oracle --directions fix quirk
    python experiments/fidelity.py --rules gold_matching turn_budget --data-dir ../shared/data

Variants: ``reference`` and ``atommem`` (the two protocols, ``atommem`` compared against ``reference``),
``reference+RULE`` for each rule where they differ (``--directions fix``, the default: the reference with
that one fix of ours, compared against ``reference``) and ``atommem-RULE`` (``--directions quirk``: ours
with that one reference rule, compared against ``atommem``). ``--rules`` picks the rules; ``--no-breakdown``
keeps only the two protocols. Scoring rules are measured by re-scoring the recorded responses (exact:
see :mod:`agents.training.fidelity`); the others are played.

``--policy oracle`` is a diagnostic that cheats (it answers with the gold); ``always-yes`` probes the
reference's any-gold scoring. Writes ``fidelity.md``, ``fidelity.csv`` and ``trajectories/<env id>/<variant>.jsonl``
into ``--out-dir``; rerunning the same command continues an interrupted run (finished episodes are kept).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import exit_on_errors, parse_dataclass, progress_bars, resume_command
from agents.training.fidelity import PRESET_CHOICES, FidelityArgs, fidelity_table, run_fidelity


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: measure every variant, print the table."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_dataclass(FidelityArgs, argv, choices={"preset": PRESET_CHOICES}, description=__doc__)
    with exit_on_errors(resume=resume_command(__file__, argv, args.out_dir, resume_flag=None)):  # rerun continues
        args.validate()
        rows = run_fidelity(args, progress_bars("ep"))
    print(fidelity_table(rows))
    print(f"\nfidelity.md, fidelity.csv and trajectories/ written to {args.out_dir}/")


if __name__ == "__main__":
    with exit_on_errors():
        main()
