"""Scripted baselines. Each decides from the observation alone, so one instance serves any batch.

- :class:`HeuristicMemoryPolicy`: stores the chunk's sentences that mention question entities (and
  bridge entities it keeps in its scratchpad), reads with question keywords, answers from memory.
- :class:`NoMemoryPolicy`: reads straight through without storing anything useful, then guesses.
- :class:`RandomPolicy`: random well- and ill-formed actions (a fuzzing and sanity baseline).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from agents import text as T
from agents.base import Completion
from atommem_env.actions import (
    ADD_MEMORY, DELETE_MEMORY, FINAL_ANSWER, MODIFY_MEMORY, UPDATE_MEMORY, UPDATE_QUERY, Op, render_ops,
)

READS = 4  # index of the read counter in observation["progress"]
DONT_KNOW = "don't know"
_BRIDGE_PREFIX = "Bridge entities: "


class _Scripted:
    name = "scripted"

    def act(self, observations: Sequence[dict[str, Any]]) -> list[Completion]:
        return [Completion(render_ops(self.decide(obs))) for obs in observations]

    def decide(self, obs: dict[str, Any]) -> list[Op]:
        raise NotImplementedError


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
        return self._read(obs) if obs["phase"] == 0 else self._answer(obs)

    # ------------------------------------------------------------------------------------ reading
    def _read(self, obs: dict[str, Any]) -> list[Op]:
        question_entities = [e for q in obs["questions"] for e in T.entities(q)]
        bridges = _bridges(obs["scratchpad"])
        facts = self._relevant_sentences(obs["chunk"], question_entities + bridges, obs["memories"])
        ops = [Op(ADD_MEMORY, fact) for fact in facts]
        new_bridges = [e for f in facts for e in T.entities(f) if not T.mentions(e, question_entities)]
        merged = list(dict.fromkeys(bridges + new_bridges))[: self.max_bridges]
        if merged != bridges:
            ops.insert(0, Op(UPDATE_MEMORY, _BRIDGE_PREFIX + "; ".join(merged)))
        query = " ".join(T.keywords(" ".join(obs["questions"])))
        if query and obs["query"] != query:
            ops.insert(0, Op(UPDATE_QUERY, query))
        if not facts:  # the chunk only advances after a Create: leave a compact trace of it
            titles = [title for title, _ in T.documents(obs["chunk"]) if title]
            ops.append(Op(ADD_MEMORY, "Section titles: " + "; ".join(titles) if titles else "Section read."))
        return ops

    def _relevant_sentences(self, chunk: str, names: list[str], shown: Sequence[str]) -> list[str]:
        facts: list[str] = []
        for title, body in T.documents(chunk):
            for sentence in T.sentences(body):
                fact = sentence if not title or T.mentions(sentence, [title]) else f"{title}: {sentence}"
                if T.mentions(fact, names) and fact not in facts and fact not in shown:
                    facts.append(fact)
        return facts[: self.max_entries_per_turn]

    # ---------------------------------------------------------------------------------- answering
    def _answer(self, obs: dict[str, Any]) -> list[Op]:
        question = obs["question"]
        base_query = " ".join(T.keywords(question))
        reads = int(obs["progress"][READS])
        if reads == 0 and obs["query"] != base_query:
            return [Op(UPDATE_QUERY, base_query or question)]
        if _YES_NO.match(question.strip()):  # comparison questions of HotpotQA answer yes/no
            return [Op(FINAL_ANSWER, "yes")]
        names = T.entities(question)
        if " or " in question and len(names) >= 2:
            return [Op(FINAL_ANSWER, _compared_entity(question, names, obs["memories"]))]
        hop1 = _best_new_entity(obs["memories"], names, exclude=names, question=question)
        if hop1 is None:
            return [Op(FINAL_ANSWER, DONT_KNOW)]
        # A second hop: look up the bridge entity once, then answer from what it links to.
        hop2 = _best_new_entity(obs["memories"], [hop1], exclude=names + [hop1], question=question)
        if hop2 is None and reads < 2 and hop1.lower() not in obs["query"].lower():
            return [Op(UPDATE_QUERY, f"{hop1} {base_query}")]
        return [Op(FINAL_ANSWER, hop2 or hop1)]


def _bridges(scratchpad: str) -> list[str]:
    if not scratchpad.startswith(_BRIDGE_PREFIX):
        return []
    return [b for b in scratchpad[len(_BRIDGE_PREFIX) :].split("; ") if b]


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
    for rank, memory in enumerate(memories, start=1):
        if not T.mentions(memory, anchors):
            continue
        body = memory.split(": ", 1)[1] if ": " in memory[:80] else memory
        for entity in T.entities(body):
            if not T.mentions(entity, exclude) and not any(entity.lower() in x.lower() for x in exclude):
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
        if obs["phase"] == 0:
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

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observations: Sequence[dict[str, Any]]) -> list[Completion]:
        return [Completion(self._response(obs)) for obs in observations]

    def _response(self, obs: dict[str, Any]) -> str:
        if self.rng.random() < 0.2:
            return str(self.rng.choice(["", "I am not sure.", "<add_memory>", "<delete_memory>x</delete_memory>"]))
        words = (obs["chunk"] or obs["question"]).split() or ["x"]
        ops = [self._op(words) for _ in range(int(self.rng.integers(1, 4)))]
        return render_ops(ops)

    def _op(self, words: list[str]) -> Op:
        phrase = " ".join(self.rng.choice(words, size=int(self.rng.integers(1, 6))))
        phrase = "".join(c for c in phrase if c not in "<>{}\\").strip() or "x"
        kind = str(self.rng.choice([ADD_MEMORY, UPDATE_MEMORY, UPDATE_QUERY, MODIFY_MEMORY, DELETE_MEMORY,
                                    FINAL_ANSWER]))
        rank = int(self.rng.integers(1, 7)) if kind in (MODIFY_MEMORY, DELETE_MEMORY) else None
        return Op(kind, "" if kind == DELETE_MEMORY else phrase, rank)
