"""Aggregate metrics of trajectories: the paper's EM plus F1, operation rates and error rates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.training.rollout import Trajectory

OP_RATE_KEYS = ("create", "read", "update", "delete", "scratchpad")


def summarize(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """Means over episodes (answer metrics per question) and per-turn operation rates.

    Returns:
        ``episodes``, ``questions``, ``em``, ``f1``, ``substring_em`` (means over questions),
        ``reward`` (mean over episodes), ``turns`` (per episode), ``{op}_per_turn`` for Create /
        Read / Update / Delete / scratchpad writes, ``store_size`` (entries at the end),
        ``invalid_per_turn`` (action errors per turn) and ``truncated`` (share of episodes).
    """
    if not trajectories:
        return {"episodes": 0}
    turns = [turn for t in trajectories for turn in t.turns]
    n_turns = max(1, len(turns))
    summary: dict[str, float] = {
        "episodes": len(trajectories),
        "questions": sum(len(t.result["em"]) for t in trajectories),
    }
    for metric in ("em", "f1", "substring_em"):
        summary[metric] = float(np.mean([x for t in trajectories for x in t.result[metric]]))
    summary["reward"] = float(np.mean([t.reward for t in trajectories]))
    summary["turns"] = len(turns) / len(trajectories)
    for key in OP_RATE_KEYS:
        summary[f"{key}_per_turn"] = sum(turn.op_counts[key] for turn in turns) / n_turns
    summary["store_size"] = float(np.mean([t.turns[-1].memory_size for t in trajectories if t.turns]))
    summary["invalid_per_turn"] = sum(
        sum(1 for e in turn.errors if e["code"] != "scratchpad_truncated") for turn in turns
    ) / n_turns
    summary["truncated"] = float(np.mean([t.truncated for t in trajectories]))
    return summary
