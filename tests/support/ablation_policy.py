"""A scripted policy that plays every ablation: the heuristic agent, with a scratchpad of facts.

:class:`~agents.scripted.HeuristicMemoryPolicy` answers from the retrieved list only and writes its
scratchpad only when its bridge list changes, so with the store hidden it scores nothing, and under the
clean ``show_retrieval=False`` (which advances on a scratchpad write) it would re-read a chunk whenever it
has nothing new to note. This one keeps the facts it finds in the scratchpad as well, writes it every
reading turn, stores the same facts in the store, and answers from both; it queries only when a query
is shown. It decides from the observation alone, like every policy.
"""

from __future__ import annotations

from typing import Any

from agents import text as T
from agents.scripted import (
    HeuristicMemoryPolicy,
    answer_from_memories,
    bridge_entity,
    question_entities,
    question_query,
    relevant_sentences,
    section_trace,
)
from atommem_env.actions import ADD_MEMORY, FINAL_ANSWER, UPDATE_MEMORY, UPDATE_QUERY, Op
from atommem_env.observation import Phase, Progress


class ScratchpadHeuristicPolicy(HeuristicMemoryPolicy):
    """The heuristic agent, keeping its facts in the scratchpad too (one fact a line)."""

    name = "heuristic-scratchpad"

    def decide(self, obs: dict[str, Any]) -> list[Op]:
        notes = [line for line in obs["scratchpad"].splitlines() if line]
        if obs["phase"] == Phase.READING:
            return self._read_with_notes(obs, notes)
        return self._answer_with_notes(obs, notes)

    def _read_with_notes(self, obs: dict[str, Any], notes: list[str]) -> list[Op]:
        names = question_entities(obs)
        bridges = [e for note in notes for e in T.entities(note) if not T.mentions(e, names)]
        facts = relevant_sentences(obs["chunk"], names + bridges, list(obs["memories"]) + notes,
                                   self.max_entries_per_turn)
        ops = [Op(UPDATE_MEMORY, "\n".join(notes + facts) or section_trace(obs["chunk"]))]
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
