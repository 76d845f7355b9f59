"""Diagnostic policies: not baselines to compare against, but probes of the scoring and the protocol.

- :class:`OraclePolicy` (``--policy oracle``) **cheats**: it reads the gold answers of the episode from
  an answer key built from the episode source, and answers each question with its gold, boxed. It is
  an upper bound, not an agent: it shows what a protocol's scoring and turn budget let a perfect
  answerer score (1.0 under ours, where every answer is scored against its own gold; less under a rule
  that loses right answers, such as a turn budget too short to reach the questions).
- :class:`AlwaysYesPolicy` (``--policy always-yes``) answers "yes" to every question. Under the
  reference's any-gold scoring a "yes" counts whenever *any* question of the episode has the gold
  "yes", so it measures how much that rule inflates EM.

Both read through the context like :class:`~agents.scripted.NoMemoryPolicy` (one placeholder entry,
written once and then updated), since a chunk only advances after a write.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from agents.base import Completion
from agents.scripted import NoMemoryPolicy, completion_of
from atommem_env.actions import FINAL_ANSWER, Op, render_op
from atommem_env.datasets.base import EpisodeSource
from atommem_env.errors import DataError, RenderError
from atommem_env.observation import Phase, Progress

AnswerKey = dict[tuple[str, ...], tuple[str, ...]]  # an episode's questions -> their gold answers


class _ReadThrough(NoMemoryPolicy):
    """Reads like NoMemoryPolicy; subclasses choose the answer."""

    def decide(self, obs: dict[str, Any]) -> list[Op]:
        if obs["phase"] == Phase.READING:
            return super().decide(obs)
        return [Op(FINAL_ANSWER, self.answer(obs))]

    def answer(self, obs: dict[str, Any]) -> str:
        raise NotImplementedError

    def act(self, observations: Sequence[dict[str, Any]]) -> list[Completion]:
        decided = [(obs, self.decide(obs)) for obs in observations]
        return [completion_of(ops, obs) if obs.get("tools") else Completion(_render(ops)) for obs, ops in decided]


def _render(ops: list[Op]) -> str:
    """The ops as action text; an answer whose braces cannot be boxed goes in the tag unboxed."""
    parts = []
    for op in ops:
        try:
            parts.append(render_op(op))
        except RenderError:
            parts.append(f"<{op.kind}>{op.text}</{op.kind}>")
    return "\n".join(parts)


class AlwaysYesPolicy(_ReadThrough):
    """Answers "yes" to every question (a probe of any-gold scoring; see the module docstring)."""

    name = "always-yes"

    def answer(self, obs: dict[str, Any]) -> str:
        """Always ``"yes"``."""
        return "yes"


class OraclePolicy(_ReadThrough):
    """An upper-bound diagnostic that CHEATS: it answers each question with its gold answer.

    The gold comes from an answer key keyed by the episode's question list (which the observation
    shows), built by :meth:`prepare` from the env's episode source. ``experiments/fidelity.py`` and
    ``experiments/evaluate.py`` call :meth:`prepare` for every env id before playing it.

    Args:
        answer_key: optional initial key, ``{questions: golds}``.
    """

    name = "oracle"

    def __init__(self, answer_key: AnswerKey | None = None) -> None:
        self.answer_key: AnswerKey = dict(answer_key or {})

    def prepare(self, source: EpisodeSource, indices: Iterable[int]) -> None:
        """Add the golds of episodes ``indices`` of ``source`` to the key.

        An episode's questions and golds depend on its index only (the rng draws distractors and the
        order), so any rng builds the right ones.

        Raises:
            DataError: two episodes ask the same questions with different golds (the key would be
                ambiguous).
        """
        for index in indices:
            episode = source.episode(int(index), np.random.default_rng(0))
            known = self.answer_key.setdefault(episode.questions, episode.answers)
            if known != episode.answers:
                raise DataError(f"{source.name} episode {index} asks the same questions as another episode "
                                f"with other golds ({known} vs {episode.answers}); the oracle cannot tell them apart.")

    def answer(self, obs: dict[str, Any]) -> str:
        """The gold answer of the current question.

        Raises:
            DataError: the episode is not in the key (call :meth:`prepare` with its source first).
        """
        golds = self.answer_key.get(tuple(obs["questions"]))
        if golds is None:
            raise DataError("The oracle has no gold answers for this episode; call OraclePolicy.prepare(source, "
                            "indices) with the env's episode source first (experiments/fidelity.py and "
                            "experiments/evaluate.py do).")
        return golds[min(int(obs["progress"][Progress.QUESTION]), len(golds) - 1)]
