"""Train a neural memory controller with RLlib PPO (new API stack) on ControllerEnv, on a CPU in minutes.

    python experiments/rllib_controller.py --out-dir runs/controller/synthetic            # the defaults
    python experiments/rllib_controller.py --iterations 3 --batch-size 400 --out-dir runs/controller/smoke
    python experiments/rllib_controller.py --out-dir runs/controller/synthetic --resume   # continue a stopped run

The controller picks one macro-action per turn (:mod:`agents.controller.macros`: store matching sentences, store the
chunk, update the best entry, read, answer, ...) from the numeric features of
:class:`~agents.controller.env.ControllerEnv`; extractive code fills in the content and the AtomMem env
scores the answers as usual. Every ``eval_every`` iterations the greedy policy plays held-out episodes
(Synthetic: the ``seed_salt=1`` family, disjoint from training's), next to the static workflows of
:mod:`agents.controller.workflows` and a random policy on the same episodes, computed once at the start.

Writes into ``--out-dir``: ``metrics.csv`` and TensorBoard events (``train/*`` from RLlib's results,
``eval/*``, ``time/*``), ``config.json``, ``baselines.json`` (the static workflows' held-out EM),
checkpoints (``checkpoints/iter-NNNN``, ``algo.save_to_path``; the newest ``keep_checkpoints``
kept; ``--resume`` continues from the newest), ``final/`` (load with ``Algorithm.from_checkpoint`` or
``agents.controller.evaluation.module_policy``), and ``curve.csv`` / ``curve.png`` (training return and
held-out EM against env steps, with the static workflows as horizontal lines).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.controller.training import ControllerArgs, train
from agents.training.cli import exit_on_errors, parse_dataclass, progress_bars


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate and write the run folder; returns the last iteration's metrics and the baselines."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_dataclass(ControllerArgs, argv, description=__doc__)
    with exit_on_errors():
        args.validate()
        from agents.training.ray.cluster import connect

        # As in ray_train.py: a raylet slow to register is retried once, and env runners import this checkout.
        connect(None, num_cpus=args.num_env_runners + 1, log_to_driver=False)
        return train(args, progress_bars("iter"))


if __name__ == "__main__":
    with exit_on_errors():
        main()
