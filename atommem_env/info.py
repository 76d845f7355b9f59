"""The keys of the ``info`` dicts that ``reset`` and ``step`` return, as ``TypedDict`` s.

At run time ``info`` is a plain dict of JSON-serializable values; these classes only tell a reader and
a type checker which keys are there. Every step of every protocol has the keys of :class:`TurnInfo`;
the last step adds the scores of :class:`StepInfo`, and :class:`~atommem_env.memagent.MemAgentEnv`
adds ``memory_truncated``.

gymnasium declares ``info`` as ``dict[str, Any]``, which a ``TypedDict`` is not a subtype of, so the
envs hand theirs over with :func:`as_dict` and readers take it back with :func:`as_step_info` (both
return the very same dict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast


class OpRecord(TypedDict):
    """One operation of a response, in the order the response gave them (``info["ops"]``)."""

    op: str  # the tag, e.g. "add_memory" (atommem_env.actions)
    rank: int | None  # the 1-based rank of the shown memory it targets (update / delete), else None
    ok: bool
    id: int | None  # the entry created, updated or deleted, else None
    error: str | None  # the error code when not ok; a warning code (e.g. "scratchpad_truncated") when ok


class ErrorRecord(TypedDict):
    """One problem of a response, also shown to the agent as feedback (``info["errors"]``)."""

    code: str  # e.g. "too_many_reads", "not_answering", "response_truncated"
    message: str
    tag: str | None  # the op's tag, or None for a problem of the whole response


class EpisodeInfo(TypedDict):
    """Where the episode stands (the same counts as ``observation["progress"]``, by name)."""

    episode_id: str
    index: int  # the episode's index in its source (``reset(options={"index": ...})``)
    phase: str  # "reading", "answering" or "done"
    turn: int
    chunk_index: int
    num_chunks: int
    question_index: int
    num_questions: int


class TurnInfo(EpisodeInfo):
    """What every step reports, in every protocol."""

    max_turns: int  # the episode's turn budget
    advanced: bool  # whether this step moved to the next chunk
    ops: list[OpRecord]
    errors: list[ErrorRecord]
    op_counts: dict[str, int]  # successful ops by kind: create, read, update, delete, scratchpad, answer
    num_invalid: int  # errors other than a truncated scratchpad
    created_ids: list[int]
    updated_ids: list[int]
    deleted_ids: list[int]
    memory_size: int  # entries in the store
    scratchpad_tokens: int


class StepInfo(TurnInfo, total=False):
    """``info`` of ``reset`` and ``step``: :class:`TurnInfo` plus the keys only some steps have.

    The score lists hold one value per question, in question order.
    """

    # MemAgentEnv only: whether the response was cut to fit the memory.
    memory_truncated: bool
    # The last step only (terminated or truncated).
    answers: list[str]
    golds: list[str]
    aliases: list[list[str]]
    skipped: list[bool]  # questions skipped after too many reads
    em: list[float]
    f1: list[float]
    substring_em: list[float]
    reward: float  # the mean of em


def as_dict(info: StepInfo) -> dict[str, Any]:
    """``info`` typed as gymnasium declares it (the same dict, not a copy)."""
    return cast(dict[str, Any], info)


def as_step_info(info: Mapping[str, Any]) -> StepInfo:
    """An ``info`` from an AtomMem env's ``reset`` or ``step``, typed by its keys (the same dict, unchecked)."""
    return cast(StepInfo, info)
