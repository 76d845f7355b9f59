"""Scripted baselines. Each decides from the observation alone, so one instance serves any batch, and
acts in the observation's action format: tags, or tool calls where the observation offers tools.

- :class:`HeuristicMemoryPolicy`: stores the chunk's sentences that mention question entities (and
  bridge entities it keeps in its scratchpad), reads with question keywords, answers from memory.
- :class:`ScratchpadHeuristicPolicy`: the same, keeping its facts in the scratchpad as well, so it
  plays every ablation (either memory alone still holds what it read).
- :class:`NoMemoryPolicy`: reads straight through without storing anything useful, then guesses.
- :class:`RandomPolicy`: random well- and ill-formed actions (a fuzzing and sanity baseline).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from agents import text as T
from agents.base import Completion
from atommem_env.actions import (
    ADD_MEMORY,
    DELETE_MEMORY,
    FINAL_ANSWER,
    MODIFY_MEMORY,
    UPDATE_MEMORY,
    UPDATE_QUERY,
    Op,
    render_ops,
)
from atommem_env.observation import Phase, Progress
from atommem_env.tool_calls import render_tool_calls, tool_calls

DONT_KNOW = "don't know"
_BRIDGE_PREFIX = "Bridge entities: "


class _Scripted:
    name = "scripted"
    # act() is a pure function of each observation (no state, no randomness): the same observation
    # always gets the same response (agents.training.fidelity relies on it to skip identical replays).
    deterministic = True

    def act(self, observations: Sequence[dict[str, Any]]) -> list[Completion]:
        return [completion_of(self.decide(obs), obs) for obs in observations]

    def decide(self, obs: dict[str, Any]) -> list[Op]:
        raise NotImplementedError


def completion_of(ops: list[Op], obs: dict[str, Any]) -> Completion:
    """The ops in the observation's action format: tag text, or (where it offers tools) tool calls, with
    their ``<tool_call>`` text as the response text."""
    if obs.get("tools"):
        return Completion(render_tool_calls(ops), tool_calls=tuple(tool_calls(ops)))
    return Completion(render_ops(ops))


class HeuristicMemoryPolicy(_Scripted):
    """Entity-matching memory agent: an honest non-learned baseline for the AtomMem protocol.

    Args:
        max_entries_per_turn: most sentences stored per chunk.
        max_bridges: most bridge entities kept in the scratchpad.
    """

    name = "heuristic"

    def __init__(self, max_entries_per_turn: int = 6, max_bridges: int = 12) -> None:
        self.max_entries_per_turn = max_entries_per_turn
        self.max_bridges = max_bridges

    def decide(self, obs: dict[str, Any]) -> list[Op]:
        """The ops for one observation: store and query while reading, read or answer while answering."""
        return self._read(obs) if obs["phase"] == Phase.READING else self._answer(obs)

    # ------------------------------------------------------------------------------------ reading
    def _read(self, obs: dict[str, Any]) -> list[Op]:
        ops = store_matching_ops(obs, self.max_entries_per_turn, self.max_bridges)
        query = question_query(obs)
        if query and obs["query"] != query:
            ops.insert(0, Op(UPDATE_QUERY, query))
        return ops

    # ---------------------------------------------------------------------------------- answering
    def _answer(self, obs: dict[str, Any]) -> list[Op]:
        question = obs["question"]
        base_query = question_query(obs)
        reads = int(obs["progress"][Progress.READS])
        if reads == 0 and obs["query"] != base_query:
            return [Op(UPDATE_QUERY, base_query or question)]
        # A second hop: look up the bridge entity once, then answer from what it links to.
        hop = bridge_entity(question, obs["memories"])
        if hop is not None and reads < 2 and hop.lower() not in obs["query"].lower():
            return [Op(UPDATE_QUERY, f"{hop} {base_query}")]
        return [Op(FINAL_ANSWER, answer_from_memories(question, obs["memories"]))]


class ScratchpadHeuristicPolicy(HeuristicMemoryPolicy):
    """The heuristic agent, keeping its facts in the scratchpad too (one fact a line): a baseline for ablations.

    :class:`HeuristicMemoryPolicy` answers from the retrieved list only and writes its scratchpad only when
    its bridge list changes, so with the store hidden it scores nothing, and under the clean
    ``show_retrieval=False`` (which advances on a scratchpad write) it would re-read a chunk whenever it
    has nothing new to note. This one writes every fact it finds to the scratchpad as well, every reading
    turn, stores the same facts in the store, and answers from both; it queries only when a query is
    shown. So removing either memory leaves the other holding what it read, and an ablation measures what
    that memory adds.

    Args:
        max_entries_per_turn, max_bridges: as for :class:`HeuristicMemoryPolicy`.
        note_chars: the scratchpad it writes keeps its first notes within this many characters (about
            1,500 tokens, inside the paper's 2,048-token scratchpad), so that the scratchpad and the same
            facts stored again never overflow the 4,096-token response budget (a cut response loses its
            last tag, and so the write that moves past the chunk).
    """

    name = "heuristic-scratchpad"

    def __init__(self, max_entries_per_turn: int = 6, max_bridges: int = 12, note_chars: int = 6000) -> None:
        super().__init__(max_entries_per_turn, max_bridges)
        self.note_chars = note_chars

    def decide(self, obs: dict[str, Any]) -> list[Op]:
        """The ops for one observation: note and store while reading, read or answer while answering."""
        # Its notes are the scratchpad's lines, less any that hold a tag: under the MemAgent protocol the
        # memory is the whole previous response, tags included, and a tag cannot be written back as text.
        notes = [line.strip() for line in obs["scratchpad"].splitlines() if line.strip() and "<" not in line]
        if obs["phase"] == Phase.READING:
            return self._read_with_notes(obs, notes)
        return self._answer_with_notes(obs, notes)

    def _read_with_notes(self, obs: dict[str, Any], notes: list[str]) -> list[Op]:
        names = question_entities(obs)
        bridges = unnamed([e for note in notes for e in T.entities(note)], names)
        facts = relevant_sentences(obs["chunk"], names + bridges, list(obs["memories"]) + notes,
                                   self.max_entries_per_turn)
        ops = [Op(UPDATE_MEMORY, "\n".join(first_lines(notes + facts, self.note_chars)) or section_trace(obs["chunk"]))]
        ops += [Op(ADD_MEMORY, fact) for fact in facts] or [Op(ADD_MEMORY, section_trace(obs["chunk"]))]
        query = question_query(obs)
        if obs["query"] and query and obs["query"] != query:
            ops.insert(0, Op(UPDATE_QUERY, query))
        return ops

    def _answer_with_notes(self, obs: dict[str, Any], notes: list[str]) -> list[Op]:
        question = obs["question"]
        memories = list(obs["memories"]) + notes
        if obs["query"]:  # retrieval is on (a clean hidden store shows no query)
            base_query = question_query(obs)
            reads = int(obs["progress"][Progress.READS])
            if reads == 0 and obs["query"] != base_query:
                return [Op(UPDATE_QUERY, base_query or question)]
            hop = bridge_entity(question, memories)
            if hop is not None and reads < 2 and hop.lower() not in obs["query"].lower():
                return [Op(UPDATE_QUERY, f"{hop} {base_query}")]
        return [Op(FINAL_ANSWER, answer_from_memories(question, memories))]


# ------------------------------------------------------------------- extractive pieces (shared)
# The heuristic agent is built from these; the macro-actions of :mod:`agents.controller.macros` reuse them.
def question_entities(obs: dict[str, Any]) -> list[str]:
    """Entities of the questions that matter now: all of them while reading, the current one after."""
    if obs["phase"] == Phase.READING:
        return [e for q in obs["questions"] for e in T.entities(q)]
    return T.entities(obs["question"])


def question_query(obs: dict[str, Any]) -> str:
    """Keyword query for the questions that matter now (all while reading, the current one after)."""
    text = " ".join(obs["questions"]) if obs["phase"] == Phase.READING else obs["question"]
    return " ".join(T.keywords(text))


def relevant_sentences(chunk: str, names: list[str], shown: Sequence[str], limit: int) -> list[str]:
    """Up to ``limit`` chunk sentences that mention one of ``names`` and are not already shown.

    A sentence that does not name its document's title gets it as a ``"Title: "`` prefix, so the
    entry stays self-contained once stored.
    """
    candidates: list[str] = []
    for title, body in T.documents(chunk):
        lines = T.sentences(body)
        named = T.mentioning(lines, [title]) if title else [True] * len(lines)
        candidates += [s if has_title else f"{title}: {s}" for s, has_title in zip(lines, named, strict=True)]
    facts: list[str] = []
    for fact, relevant in zip(candidates, T.mentioning(candidates, names), strict=True):
        if relevant and fact not in facts and fact not in shown:
            facts.append(fact)
    return facts[:limit]


def first_lines(lines: list[str], chars: int) -> list[str]:
    """The leading ``lines`` that fit in ``chars`` characters once joined by newlines."""
    kept: list[str] = []
    used = -1  # n lines take n - 1 newlines
    for line in lines:
        used += len(line) + 1
        if used > chars:
            break
        kept.append(line)
    return kept


def section_trace(chunk: str) -> str:
    """A compact trace of a chunk (its document titles): the cheapest write that moves past it."""
    titles = [title for title, _ in T.documents(chunk) if title]
    return "Section titles: " + "; ".join(titles) if titles else "Section read."


def bridges(scratchpad: str) -> list[str]:
    """Bridge entities noted in a scratchpad written by :func:`bridge_note_op`."""
    if not scratchpad.startswith(_BRIDGE_PREFIX):
        return []
    return [b for b in scratchpad[len(_BRIDGE_PREFIX) :].split("; ") if b]


def bridge_note_op(obs: dict[str, Any], facts: list[str], max_bridges: int) -> Op | None:
    """Scratchpad write adding the new entities of ``facts`` to the bridge list (None if unchanged)."""
    known = bridges(obs["scratchpad"])
    names = question_entities(obs)
    new = unnamed([e for f in facts for e in T.entities(f)], names)
    merged = list(dict.fromkeys(known + new))[:max_bridges]
    return Op(UPDATE_MEMORY, _BRIDGE_PREFIX + "; ".join(merged)) if merged != known else None


def store_matching_ops(obs: dict[str, Any], max_entries: int, max_bridges: int) -> list[Op]:
    """The heuristic's reading writes: note bridges, store matching sentences (else a trace)."""
    facts = relevant_sentences(obs["chunk"], question_entities(obs) + bridges(obs["scratchpad"]),
                               obs["memories"], max_entries)
    ops = [Op(ADD_MEMORY, fact) for fact in facts]
    note = bridge_note_op(obs, facts, max_bridges)
    if note is not None:
        ops.insert(0, note)
    if not facts:  # the chunk only advances after a Create: leave a compact trace of it
        ops.append(Op(ADD_MEMORY, section_trace(obs["chunk"])))
    return ops


def unnamed(entities: list[str], names: list[str]) -> list[str]:
    """The ``entities`` that mention none of ``names`` (in order)."""
    return [e for e, named in zip(entities, T.mentioning(entities, names), strict=True) if not named]


def hops(question: str, memories: Sequence[str]) -> tuple[str | None, str | None]:
    """(first-hop entity, second-hop entity) that the shown memories support for ``question``."""
    names = T.entities(question)
    hop1 = _best_new_entity(memories, names, exclude=names, question=question)
    if hop1 is None:
        return None, None
    return hop1, _best_new_entity(memories, [hop1], exclude=names + [hop1], question=question)


def bridge_entity(question: str, memories: Sequence[str]) -> str | None:
    """The first-hop entity worth looking up: shown memories name it, but not yet what it links to.

    None for yes/no and "A or B?" questions, whose answer needs no second hop.
    """
    if is_yes_no(question) or is_comparison(question):
        return None
    hop1, hop2 = hops(question, memories)
    return hop1 if hop2 is None else None


def is_yes_no(question: str) -> bool:
    """A question that opens like "Is / Did / Were ..." (HotpotQA's comparisons answer yes or no)."""
    return bool(_YES_NO.match(question.strip()))


def is_comparison(question: str) -> bool:
    """An "A or B?" question naming at least two entities: the answer is one of them."""
    return " or " in question and len(T.entities(question)) >= 2


def answer_from_memories(question: str, memories: Sequence[str]) -> str:
    """The heuristic's answer: yes for yes/no questions, a compared entity, else the best hop."""
    if is_yes_no(question):
        return "yes"
    if is_comparison(question):
        return _compared_entity(question, T.entities(question), memories)
    hop1, hop2 = hops(question, memories)
    return hop2 or hop1 or DONT_KNOW


_YES_NO = re.compile(r"^(are|is|was|were|do|does|did|can|could|has|have)\b", re.IGNORECASE)
_WANTS_NUMBER = re.compile(r"\b(when|what year|which year|how many|how much|how old|what date)\b", re.IGNORECASE)


def _best_new_entity(memories: Sequence[str], anchors: list[str], exclude: list[str],
                     question: str = "") -> str | None:
    """The entity best supported by memories that mention an anchor, excluding known names.

    Each such memory votes for its entities with weight 1/rank (retrieval order), so an entity
    several relevant memories agree on wins; entities of the wrong type for the question (numbers
    for "who/which", names for "when/how many") are dropped while others remain.
    """
    votes: dict[str, float] = {}
    for rank, (memory, anchored) in enumerate(zip(memories, T.mentioning(memories, anchors), strict=True), start=1):
        if not anchored:
            continue
        body = memory.split(": ", 1)[1] if ": " in memory[:80] else memory
        for entity in unnamed(T.entities(body), exclude):
            if not any(entity.lower() in x.lower() for x in exclude):
                votes[entity] = votes.get(entity, 0.0) + 1.0 / rank
    if not votes:
        return None
    wants_number = bool(_WANTS_NUMBER.search(question))
    typed = {e: v for e, v in votes.items() if any(c.isdigit() for c in e) == wants_number}
    pool = typed or votes
    return max(pool, key=lambda e: (pool[e], -list(votes).index(e)))


def _compared_entity(question: str, names: list[str], memories: Sequence[str]) -> str:
    """For "A or B?" questions the answer is one of the compared entities.

    Without reasoning over the facts, prefer the entity that retrieved memories mention most (the
    better-documented side), and the last-named one on a tie, as the no-memory guess does.
    """
    tail = question.rsplit(" or ", 1)
    compared = [n for n in names if T.mentions(tail[-1], [n])][-1:] + [
        n for n in names if T.mentions(tail[0].rsplit(",", 1)[-1], [n])][-1:]
    compared = compared or names[-2:]
    support = {n: sum(T.mentions(m, [n]) for m in memories) for n in compared}
    return max(compared, key=lambda n: (support[n], compared.index(n) == 0))


class NoMemoryPolicy(_Scripted):
    """Reads through without keeping anything useful, then guesses from the question alone.

    It keeps a single placeholder entry (Create once, then Update it) because a chunk only advances
    after a Create or Update; the placeholder carries no information.
    """

    name = "no-memory"

    def decide(self, obs: dict[str, Any]) -> list[Op]:
        """The ops for one observation: the placeholder write while reading, a guess while answering."""
        if obs["phase"] == Phase.READING:
            if obs["memories"]:
                return [Op(MODIFY_MEMORY, "nothing", 1)]
            return [Op(ADD_MEMORY, "nothing")]
        guesses = T.entities(obs["question"])
        return [Op(FINAL_ANSWER, guesses[-1] if guesses else DONT_KNOW)]


class RandomPolicy(_Scripted):
    """Random actions built from words of the observation; about one in five is malformed.

    Args:
        seed: seed of the policy's own Generator (runs are reproducible).
    """

    name = "random"
    deterministic = False  # draws from its own Generator

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observations: Sequence[dict[str, Any]]) -> list[Completion]:
        """One random response per observation, drawn in input order from the policy's Generator."""
        return [self._response(obs) for obs in observations]

    def _response(self, obs: dict[str, Any]) -> Completion:
        if self.rng.random() < 0.2:
            malformed = _MALFORMED_CALLS if obs.get("tools") else _MALFORMED_TAGS
            bad = malformed[int(self.rng.choice(len(malformed)))]  # as rng.choice(malformed) draws
            return Completion(bad) if isinstance(bad, str) else Completion("", tool_calls=bad)
        words = (obs["chunk"] or obs["question"]).split() or ["x"]
        return completion_of([self._op(words) for _ in range(int(self.rng.integers(1, 4)))], obs)

    def _op(self, words: list[str]) -> Op:
        phrase = " ".join(self.rng.choice(words, size=int(self.rng.integers(1, 6))))
        phrase = "".join(c for c in phrase if c not in "<>{}\\").strip() or "x"
        kind = str(self.rng.choice([ADD_MEMORY, UPDATE_MEMORY, UPDATE_QUERY, MODIFY_MEMORY, DELETE_MEMORY,
                                    FINAL_ANSWER]))
        rank = int(self.rng.integers(1, 7)) if kind in (MODIFY_MEMORY, DELETE_MEMORY) else None
        return Op(kind, "" if kind == DELETE_MEMORY else phrase, rank)


_MALFORMED_TAGS = ("", "I am not sure.", "<add_memory>", "<delete_memory>x</delete_memory>")
_MALFORMED_CALLS: tuple[str | tuple[dict[str, Any], ...], ...] = (
    "", "I am not sure.", '<tool_call>{"name": "add_memory", "arguments": {"text": ',
    ({"name": "delete_memory", "arguments": {"rank": "x"}},), ({"name": "remember", "arguments": {}},),
)
