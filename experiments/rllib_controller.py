"""Train a neural memory controller with RLlib PPO (new API stack) on ControllerEnv, on a CPU in minutes.

    python experiments/rllib_controller.py --out-dir runs/controller/synthetic            # the defaults
    python experiments/rllib_controller.py --iterations 3 --batch-size 400 --out-dir runs/controller/smoke

The controller picks one macro-action per turn (:mod:`agents.controller.macros`: store matching sentences, store the
chunk, update the best entry, read, answer, ...) from the numeric features of
:class:`~agents.controller.env.ControllerEnv`; extractive code fills in the content and the AtomMem env
scores the answers as usual. Every ``eval_every`` iterations the greedy policy plays held-out episodes
(Synthetic: the ``seed_salt=1`` family, disjoint from training's), next to the static workflows of
:mod:`agents.controller.workflows` and a random policy on the same episodes, computed once at the start.

Writes into ``--out-dir``: ``metrics.csv`` and TensorBoard events (``train/*`` from RLlib's results,
``eval/*``, ``time/*``), ``config.json``, ``baselines.json`` (the static workflows' held-out EM),
checkpoints (``checkpoints/iter-NNNN``, ``algo.save_to_path``; the newest ``keep_checkpoints``
kept), ``final/`` (load with ``Algorithm.from_checkpoint`` or ``agents.controller.evaluation.module_policy``),
and ``curve.csv`` / ``curve.png`` (training return and held-out EM against env steps, with the static
workflows as horizontal lines).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm

from agents.controller.curve import run_label, write_curve
from agents.controller.training import (
    ControllerArgs,
    baselines,
    evaluate,
    ppo_config,
    register_env,
    rows_last,
    save,
    train_metrics,
)
from agents.training.cli import exit_on_errors, parse_dataclass
from agents.training.tracking import Tracker


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate and write the run folder; returns the last iteration's metrics and the baselines."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_dataclass(ControllerArgs, argv, description=__doc__)
    with exit_on_errors():
        args.validate()
        return run(args)


def run(args: ControllerArgs) -> dict[str, Any]:
    """The run's loop: baselines, PPO iterations with evaluations and checkpoints, the curve."""
    out = Path(args.out_dir)
    from agents.training.ray.cluster import connect

    # As in ray_train.py: a raylet slow to register is retried once, and env runners import this checkout.
    connect(None, num_cpus=args.num_env_runners + 1, log_to_driver=False)
    register_env()
    reference = baselines(args)
    out.mkdir(parents=True, exist_ok=True)
    (out / "baselines.json").write_text(json.dumps(reference, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    algo = ppo_config(args).build_algo()
    rows: list[dict[str, float]] = []
    with Tracker(out, backend=args.logger, config=asdict(args)) as tracker:
        bar = tqdm(range(1, args.iterations + 1), desc="PPO", unit="iter")
        for iteration in bar:
            started = time.perf_counter()
            metrics = train_metrics(algo.train())
            if iteration % args.eval_every == 0 or iteration == args.iterations:
                metrics.update(evaluate(args, algo.get_module()))
            metrics["time/wall_s"] = time.perf_counter() - started
            tracker.log(metrics, step=iteration)
            rows.append({"iteration": iteration, **metrics})
            bar.set_postfix(ret=f"{metrics['train/episode_return_mean']:.3f}",
                            eval_em=f"{rows_last(rows, 'eval/em'):.3f}")
            if iteration % args.checkpoint_every == 0:
                save(algo, out, iteration, args.keep_checkpoints)
    algo.save_to_path(str((out / "final").resolve()))
    algo.stop()
    write_curve(rows, reference, out, run_label(asdict(args)))
    return {"last": rows[-1], "baselines": reference}


if __name__ == "__main__":
    main()
