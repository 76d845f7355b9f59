"""Macro-actions: discrete memory decisions, each rendered into the env's ordinary action text.

A learned controller (or a fixed workflow) picks *which* atomic operation to apply; the extractive
pieces of the heuristic agent (:mod:`agents.scripted`) fill in the *content*. Every macro renders
to the tags of :mod:`atommem_env.actions`, so the env, its rules and its reward stay unchanged.

=================  ============================================================================
macro              action text (from the text observation)
=================  ============================================================================
``skip``           Create a one-line trace of the chunk (its document titles): the cheapest
                   write that moves past it
``store_matches``  Create the chunk sentences that mention question or bridge entities (a trace
                   when none do) and note new bridge entities in the scratchpad
``store_chunk``    Create one entry per document of the chunk (long ones cut so that the response
                   fits the env's response budget); note bridge entities
``update_best``    Update ``Memory 1`` with this chunk's matching sentences appended (MemAgent-like
                   overwrite of one running note; a Create when nothing is shown); note bridges
``delete_worst``   Delete the last (least similar) shown entry
``read_question``  Read: set the query to the question keywords
``read_bridge``    Read: set the query to the first-hop entity the shown memories support, plus
                   the question keywords (the keywords alone when no such entity is shown)
``answer``         Answer the current question from the shown memories
=================  ============================================================================

The first five write memory and belong to the reading phase; ``answer`` to the answering phase; the
reads to both. :func:`applicable` says when a macro can act: not outside its phase, ``delete_worst``
only with something shown, and no read while reading once ``max_reads`` consecutive reads were made
(the env refuses it). A macro that does not apply renders an empty response: the env reports
``no_action`` and the turn is spent without changing anything, as it would be for a model. A
controller masks those macros out (every applicable macro changes the env's state, so a greedy
policy cannot loop on a refused action).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents import scripted as S
from agents import text as T
from atommem_env.actions import (
    ADD_MEMORY,
    DELETE_MEMORY,
    FINAL_ANSWER,
    MODIFY_MEMORY,
    UPDATE_QUERY,
    Op,
    render_op,
)
from atommem_env.errors import ConfigError, RenderError
from atommem_env.observation import Phase, Progress
from atommem_env.tokenization import Tokenizer, truncate_tokens

MACROS = (
    "skip", "store_matches", "store_chunk", "update_best", "delete_worst", "read_question", "read_bridge",
    "answer",
)
READING, ANSWERING = Phase.READING, Phase.ANSWERING  # observation["phase"]


@dataclass(frozen=True)
class MacroSettings:
    """How much the extractive macros write.

    Attributes:
        max_entries: most sentences ``store_matches`` / ``update_best`` take from one chunk.
        max_bridges: most bridge entities kept in the scratchpad.
        entry_tokens: longest entry a macro writes (longer documents and notes are cut); set it to
            the env's ``max_entry_tokens`` so the env never refuses an entry as too long.
        response_tokens: longest response a macro writes; set it to the env's ``response_tokens``
            (a 4,000-token chunk stored whole would not fit a 4,096-token response with its tags).
    """

    max_entries: int = 6
    max_bridges: int = 12
    entry_tokens: int = 1024
    response_tokens: int = 4096

    def __post_init__(self) -> None:
        for name in ("max_entries", "max_bridges", "entry_tokens", "response_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"MacroSettings({name}={value!r}): need an int >= 1.")


def applicable(macro: str, phase: int, shown: int, reads_left: bool) -> bool:
    """Whether ``macro`` can act in ``phase`` (0 reading, 1 answering) with ``shown`` memories listed.

    ``reads_left`` is False while reading once the consecutive-read limit is reached.

    Raises:
        ConfigError: ``macro`` is not one of :data:`MACROS`.
    """
    _check_macro(macro)
    if macro == "delete_worst" and shown == 0:
        return False
    if macro in ("read_question", "read_bridge") and not reads_left:
        return False
    macro_phase = _BUILDERS[macro][0]
    return macro_phase is None or macro_phase == phase


def render_macro(macro: str, obs: dict[str, Any], tokenizer: Tokenizer, settings: MacroSettings,
                 max_reads: int = 3) -> str:
    """The action text of ``macro`` for the text observation ``obs`` ("" when it does not apply).

    ``max_reads`` is the env's consecutive-read limit while reading (its ``max_reads`` option).

    Raises:
        ConfigError: ``macro`` is not one of :data:`MACROS`.
    """
    _check_macro(macro)
    reads_left = obs["phase"] == ANSWERING or int(obs["progress"][Progress.READS]) < max_reads
    if not applicable(macro, obs["phase"], len(obs["memories"]), reads_left):
        return ""
    ops = _BUILDERS[macro][1](obs, _Context(tokenizer, settings))
    return "\n".join(text for text in map(_render, ops) if text)


def _check_macro(macro: str) -> None:
    if macro not in _BUILDERS:
        raise ConfigError(f"Unknown macro-action {macro!r}; choose one of {', '.join(MACROS)}.")


@dataclass(frozen=True)
class _Context:
    tokenizer: Tokenizer
    settings: MacroSettings

    def cut(self, text: str, tokens: int | None = None) -> str:
        limit = self.settings.entry_tokens if tokens is None else min(tokens, self.settings.entry_tokens)
        return truncate_tokens(text, limit, self.tokenizer)[0].strip()

    def count(self, text: str) -> int:
        return self.tokenizer.count(text)


def _render(op: Op) -> str:
    # Extracted text that the parser would not read back unchanged (it contains an action tag, or
    # unbalanced braces in an answer) is left out rather than sent garbled.
    try:
        return render_op(op)
    except RenderError:
        return ""


# ------------------------------------------------------------------------------------- writes
def _skip(obs: dict[str, Any], ctx: _Context) -> list[Op]:
    return [Op(ADD_MEMORY, S.section_trace(obs["chunk"]))]


def _store_matches(obs: dict[str, Any], ctx: _Context) -> list[Op]:
    return S.store_matching_ops(obs, ctx.settings.max_entries, ctx.settings.max_bridges)


def _store_chunk(obs: dict[str, Any], ctx: _Context) -> list[Op]:
    docs = [f"{title}: {body}" if title else body for title, body in T.documents(obs["chunk"])]
    note = _with_bridge_note(obs, ctx, [])
    # One response must hold every entry and its tags: long documents share what short ones leave.
    budget = ctx.settings.response_tokens - sum(ctx.count(_render(op) + "\n") for op in note)
    budget -= len(docs) * ctx.count(_render(Op(ADD_MEMORY, "x")) + "\n")
    shares = _shares([ctx.count(d) for d in docs], budget)
    entries = [ctx.cut(doc, share) for doc, share in zip(docs, shares, strict=True)]
    ops = [Op(ADD_MEMORY, text) for text in entries if text]
    return note + (ops or [Op(ADD_MEMORY, S.section_trace(obs["chunk"]))])


def _shares(lengths: list[int], budget: int) -> list[int]:
    """Token allowance per document: the shortest keep their length, the rest split what is left."""
    shares = [0] * len(lengths)
    left = max(0, budget)
    for k, i in enumerate(sorted(range(len(lengths)), key=lengths.__getitem__)):
        shares[i] = min(lengths[i], left // (len(lengths) - k))
        left -= shares[i]
    return shares


def _update_best(obs: dict[str, Any], ctx: _Context) -> list[Op]:
    if not obs["memories"]:
        facts = _matching(obs, ctx, shown=())
        return _with_bridge_note(obs, ctx, [Op(ADD_MEMORY, ctx.cut(" ".join(facts) or S.section_trace(obs["chunk"])))])
    note = obs["memories"][0]
    new = [fact for fact in _matching(obs, ctx, shown=()) if fact not in note]
    return _with_bridge_note(obs, ctx, [Op(MODIFY_MEMORY, ctx.cut(" ".join([note, *new])), 1)])


def _delete_worst(obs: dict[str, Any], ctx: _Context) -> list[Op]:
    return [Op(DELETE_MEMORY, rank=len(obs["memories"]))] if obs["memories"] else []


def _matching(obs: dict[str, Any], ctx: _Context, shown: tuple[str, ...]) -> list[str]:
    names = S.question_entities(obs) + S.bridges(obs["scratchpad"])
    return S.relevant_sentences(obs["chunk"], names, shown, ctx.settings.max_entries)


def _with_bridge_note(obs: dict[str, Any], ctx: _Context, ops: list[Op]) -> list[Op]:
    note = S.bridge_note_op(obs, _matching(obs, ctx, shown=()), ctx.settings.max_bridges)
    return [note, *ops] if note is not None else ops


# -------------------------------------------------------------------------------- reads, answer
def _read_question(obs: dict[str, Any], ctx: _Context) -> list[Op]:
    query = S.question_query(obs) or (obs["question"] if obs["phase"] == ANSWERING else " ".join(obs["questions"]))
    return [Op(UPDATE_QUERY, query.strip())] if query.strip() else []


def _read_bridge(obs: dict[str, Any], ctx: _Context) -> list[Op]:
    questions = obs["questions"] if obs["phase"] == READING else (obs["question"],)
    for question in questions:
        hop = S.bridge_entity(question, obs["memories"])
        if hop is not None:
            return [Op(UPDATE_QUERY, f"{hop} {' '.join(T.keywords(question))}".strip())]
    return _read_question(obs, ctx)


def _answer(obs: dict[str, Any], ctx: _Context) -> list[Op]:
    return [Op(FINAL_ANSWER, S.answer_from_memories(obs["question"], obs["memories"]))]


# macro -> (the phase it applies in, or None for both; its op builder)
_BUILDERS: dict[str, tuple[int | None, Callable[[dict[str, Any], _Context], list[Op]]]] = {
    "skip": (READING, _skip),
    "store_matches": (READING, _store_matches),
    "store_chunk": (READING, _store_chunk),
    "update_best": (READING, _update_best),
    "delete_worst": (READING, _delete_worst),
    "read_question": (None, _read_question),
    "read_bridge": (None, _read_bridge),
    "answer": (ANSWERING, _answer),
}
assert tuple(_BUILDERS) == MACROS
