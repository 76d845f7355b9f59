"""Aggregate metrics of trajectories: the paper's EM plus F1, operation rates and error rates.

EM and F1 come two ways: per question (``em``: pooled over every question) and per episode
(``episode_em``: the mean of each episode's fraction correct, as the paper's reference evaluation
aggregates). :func:`confidence_intervals` adds 95 % bootstrap intervals clustered by episode.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.training.rollout import Trajectory, Turn
from agents.training.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, WEIGHTINGS, bootstrap_ci
from atommem_env.actions import ADD_MEMORY, parse_action
from atommem_env.tool_calls import parse_tool_calls

OP_RATE_KEYS = ("create", "read", "update", "delete", "scratchpad")
INTERVAL_METRICS = ("em", "f1", "episode_em", "episode_f1")  # each gets ``_lo`` and ``_hi`` columns


def summarize(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """Means over episodes (answer metrics per question) and per-turn operation rates.

    Returns:
        ``episodes``, ``questions``, ``em``, ``f1``, ``substring_em`` (means over questions),
        ``episode_em``, ``episode_f1`` (means over episodes of each episode's mean over its questions),
        ``reward`` (mean over episodes), ``turns`` (per episode), ``{op}_per_turn`` for Create /
        Read / Update / Delete / scratchpad writes, ``store_size`` (entries at the end),
        ``invalid_per_turn`` (action errors per turn), ``truncated`` (share of episodes) and
        ``copied_creates`` (see :func:`copied_creates`).
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
    for metric in ("em", "f1"):
        summary[f"episode_{metric}"] = float(np.mean([np.mean(t.result[metric]) for t in trajectories]))
    summary["reward"] = float(np.mean([t.reward for t in trajectories]))
    summary["turns"] = len(turns) / len(trajectories)
    for key in OP_RATE_KEYS:
        summary[f"{key}_per_turn"] = sum(turn.op_counts[key] for turn in turns) / n_turns
    summary["store_size"] = float(np.mean([t.turns[-1].memory_size for t in trajectories if t.turns]))
    summary["invalid_per_turn"] = sum(map(invalid_actions, turns)) / n_turns
    summary["truncated"] = float(np.mean([t.truncated for t in trajectories]))
    summary["copied_creates"] = copied_creates(turns)
    return summary


def copied_creates(turns: Sequence[Turn]) -> float:
    """The share of Create texts found verbatim in their turn's prompt (0.0 when nothing was created).

    A diagnostic of copying, the skill a memory agent needs before it can answer from memory: a
    scripted teacher that stores sentences of the chunk scores near 1, a model that writes entries in
    the chunk's style without copying them near 0, however well-formed its actions (docs/TRAINING.md).
    """
    texts = [(text, turn.user) for turn in turns for text in created_texts(turn)]
    return sum(text in user for text, user in texts) / len(texts) if texts else 0.0


def created_texts(turn: Turn) -> list[str]:
    """The stripped texts of the turn's Create operations, as its action wrote them (tags or tool calls)."""
    parsed = parse_action(turn.action) if isinstance(turn.action, str) else parse_tool_calls(turn.action)
    return [op.text.strip() for op in parsed.ops if op.kind == ADD_MEMORY]


def invalid_actions(turn: Turn) -> int:
    """The turn's action errors (a scratchpad cut to its limit is feedback, not an invalid action)."""
    return sum(1 for error in turn.errors if error["code"] != "scratchpad_truncated")


def confidence_intervals(trajectories: Sequence[Trajectory], *, resamples: int = DEFAULT_RESAMPLES,
                         seed: int = DEFAULT_SEED, level: float = 0.95) -> dict[str, float]:
    """Bootstrap intervals of EM and F1, per question and per episode, resampling whole episodes.

    Returns:
        ``{metric}_lo`` and ``{metric}_hi`` for each metric of :data:`INTERVAL_METRICS`, the bounds of
        :func:`agents.training.stats.bootstrap_ci` (all four from the same resamples); empty when
        there are no trajectories.

    Raises:
        ConfigError: ``resamples`` or ``level`` is out of range.
    """
    if not trajectories:
        return {}
    bounds: dict[str, float] = {}
    for metric in ("em", "f1"):
        values = [[float(x) for x in t.result[metric]] for t in trajectories]
        for prefix, weighting in WEIGHTINGS:
            interval = bootstrap_ci(values, weighting=weighting, resamples=resamples, seed=seed, level=level)
            bounds[f"{prefix}{metric}_lo"], bounds[f"{prefix}{metric}_hi"] = interval.lo, interval.hi
    return bounds
