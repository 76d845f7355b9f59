"""Evaluate an SFT run's final model with ``experiments/evaluate.py`` and turn its table into metrics."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.training import evaluation


def evaluate_final(args: Any, final: Path) -> dict[str, float]:
    """Greedy episodes of ``final`` on ``args.eval_env_ids``; trajectories and tables go to ``out_dir/eval``.

    ``args.resume`` carries over: an interrupted evaluation of the same final model continues.
    """
    policy_kwargs = {"temperature": 0, **json.loads(args.eval_policy_kwargs)}
    eval_args = evaluation.Args(
        env_ids=list(args.eval_env_ids), policy=f"hf:{final}", policy_kwargs=json.dumps(policy_kwargs),
        episodes=args.eval_episodes, seed=args.seed, data_dir=args.eval_data_dir or None,
        env_kwargs=args.eval_env_kwargs, out_dir=str(Path(args.out_dir) / "eval"), resume=args.resume,
        no_plots=True,
    )
    eval_args.validate()
    return eval_metrics(evaluation.evaluate(eval_args))


def eval_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """``eval/em``, ``eval/f1``, ``eval/substring_em`` over all questions, and ``eval/<env id>/em`` per id."""
    questions = sum(row["questions"] for row in rows)
    metrics = {
        f"eval/{name}": sum(row[name] * row["questions"] for row in rows) / max(questions, 1)
        for name in ("em", "f1", "substring_em")
    }
    metrics.update({f"eval/{row['env_id']}/em": row["em"] for row in rows})
    return metrics
