"""GRPO on one machine: sample groups of episodes, score them, update the model, repeat (SPEC §8).

    python experiments/grpo_train.py --preset cpu-small --out-dir runs/grpo/smoke          # minutes on a CPU
    python experiments/grpo_train.py --preset cpu-small --out-dir runs/grpo/smoke --resume # continue it
    python experiments/grpo_train.py --preset paper --data-dir ../shared/data --device cuda --out-dir runs/grpo/paper

Each step takes ``prompts_per_step`` training episodes and rolls each out ``group_size`` times from the
same start (same index and seed; the samples differ), with the model being trained as the policy
(shared in memory, not copied: the weights the learner updates are the weights the next step samples
from). Every turn of every episode becomes one training sample carrying its episode's advantage
(reward minus its group's mean), and one optimizer step follows (the loss, ``--dual-clip``,
``--recompute-old-logprobs``, ``--precision`` and ``--dynamic-sampling``: docs/TRAINING.md). Held-out
episodes (the last ``eval_episodes`` of the source, never trained on) are played greedily every
``eval_every`` steps.

Writes into ``--out-dir``: checkpoints (``checkpoints/step-XXXXXXXX``, with optimizer, scheduler and RNG
states, so ``--resume`` continues exactly), ``metrics.csv`` and TensorBoard events (``train/*``,
``rollout/*`` including the per-turn Create/Read/Update/Delete rates, ``eval/*``, ``time/*``),
``config.json`` and ``final/`` (the last weights, loadable with ``--policy hf:<out-dir>/final``).

``--preset paper`` trains on HotpotQA's train split (``--env-kwargs '{"split": "train"}'``); a real-benchmark
id on its dev split, where ``evaluate.py`` scores, is refused unless ``--allow-dev-training``. ``config.json``
records the split trained on (``"split"``: ``"train"`` or ``"dev"``; ``null`` with the ``"seed_salt"`` for
Synthetic ids, which have no split).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import exit_on_errors, parse_dataclass, progress_bars
from agents.training.grpo_config import PRESETS, GRPOArgs
from agents.training.grpo_run import GRPORun
from agents.training.runs import train


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Parse ``argv``, train, and return the last logged metrics."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_dataclass(GRPOArgs, argv, description=__doc__, presets=PRESETS)
    # Ctrl-C or a fault: train() says how to go on (--resume only when a checkpoint exists).
    with exit_on_errors():
        args.validate()
        return train(args, GRPORun, progress=progress_bars("step"))


if __name__ == "__main__":
    with exit_on_errors():
        main()
