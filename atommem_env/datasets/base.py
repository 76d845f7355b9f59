"""The data contract between benchmark adapters, episode builders and the environment.

An adapter turns one official dataset file into :class:`QASample` records. A builder groups samples
into long-context :class:`Episode` values. The environment only ever sees an :class:`EpisodeSource`:
something with a length and a pure ``episode(index, rng)`` method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class QASample:
    """One question of a multi-hop QA dataset, in a dataset-independent shape.

    Attributes:
        id: the dataset's own id for the question (or a stable one derived from its position).
        question: the question text.
        answer: the gold answer used for the reward.
        aliases: other accepted answers where the dataset has them (MuSiQue); not used for the reward
            by default, as in the reference.
        paragraphs: the question's own paragraphs (gold and the dataset's distractors), each rendered
            ``"{title}\\n{text}"``.
        supporting_titles: titles of the paragraphs that support the answer.
    """

    id: str
    question: str
    answer: str
    paragraphs: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    supporting_titles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Episode:
    """Everything the environment needs for one episode.

    Attributes:
        episode_id: a stable, human-readable id, e.g. ``"hotpotqa/dev/200/17"``.
        questions: the episode's questions, answered in this order.
        answers: the gold answer of each question (same length as ``questions``).
        documents: the documents of the long context in the order they are shown.
        context: the rendered long context the agent reads chunk by chunk.
        aliases: accepted alternative answers per question (may be empty tuples).
        supporting: per question, the documents (as rendered in ``documents``) that hold its evidence.
    """

    episode_id: str
    questions: tuple[str, ...]
    answers: tuple[str, ...]
    documents: tuple[str, ...]
    context: str
    aliases: tuple[tuple[str, ...], ...] = ()
    supporting: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.questions:
            raise ValueError(f"Episode {self.episode_id!r} has no questions.")
        if len(self.questions) != len(self.answers):
            raise ValueError(
                f"Episode {self.episode_id!r} has {len(self.questions)} questions but "
                f"{len(self.answers)} answers; each question needs exactly one gold answer."
            )
        if not self.context.strip():
            raise ValueError(f"Episode {self.episode_id!r} has an empty context.")


def render_documents(documents: Sequence[str]) -> str:
    """Render documents as the reference does: ``"Document i:\\n{doc}"`` from 1, blank-line separated."""
    return "\n\n".join(f"Document {i}:\n{doc}" for i, doc in enumerate(documents, start=1))


@runtime_checkable
class EpisodeSource(Protocol):
    """A finite, indexable family of episodes.

    ``episode(index, rng)`` must be a pure function of ``index`` and the state of ``rng``: the same
    arguments give the same episode on any machine. That is how a GRPO group shares one initial state.
    """

    name: str

    def __len__(self) -> int: ...

    def episode(self, index: int, rng: np.random.Generator) -> Episode:
        """Episode ``index``, its random choices (distractors, order) drawn from ``rng``."""
        ...
