"""The scripted baselines of agents/scripted.py that need more than the shared protocol tests."""

from __future__ import annotations

import gymnasium as gym

import atommem_env  # noqa: F401  (registers the ids)
from agents import HeuristicMemoryPolicy, ScratchpadHeuristicPolicy, make_policy
from agents.scripted import first_lines
from agents.training.metrics import summarize
from agents.training.rollout import rollout
from atommem_env.actions import UPDATE_MEMORY, parse_action
from atommem_env.observation import Phase

SYNTHETIC = "AtomMem-Synthetic-v0"
EPISODES = list(range(30))


def _em(policy, **options) -> float:
    return summarize(rollout(lambda: gym.make(SYNTHETIC, **options), policy, EPISODES, indices=EPISODES))["em"]


def test_heuristic_scratchpad_is_a_built_in_baseline():
    assert isinstance(make_policy("heuristic-scratchpad"), ScratchpadHeuristicPolicy)
    assert make_policy("heuristic-scratchpad", max_entries_per_turn=2).max_entries_per_turn == 2


def test_heuristic_scratchpad_keeps_what_it_stores_in_the_scratchpad_too():
    env = gym.make(SYNTHETIC)
    obs, _ = env.reset(seed=0, options={"index": 0})
    policy = ScratchpadHeuristicPolicy()
    stored: list[str] = []
    while obs["phase"] == Phase.READING:
        obs, _, _, _, info = env.step(policy.act([obs])[0].text)
        stored += [env.unwrapped.memory.get(i) for i in info["created_ids"]]
    facts = [s for s in stored if not s.startswith("Section titles: ")]
    assert facts and all(fact in obs["scratchpad"].splitlines() for fact in facts)


def test_heuristic_scratchpad_still_answers_when_either_memory_is_gone():
    """Each memory alone holds what it read: the plain heuristic scores nothing with the store hidden."""
    assert _em(ScratchpadHeuristicPolicy()) >= 0.1
    assert _em(ScratchpadHeuristicPolicy(), show_retrieval=False) >= 0.1
    assert _em(ScratchpadHeuristicPolicy(), show_scratchpad=False) >= 0.1
    assert _em(HeuristicMemoryPolicy(), show_retrieval=False) == 0.0


def test_heuristic_scratchpad_keeps_its_first_notes_within_its_budget():
    """So that the scratchpad and the same facts stored again never overflow the response budget."""
    assert first_lines(["ab", "cd", "ef"], 5) == ["ab", "cd"] and first_lines(["abcdef"], 5) == []
    env = gym.make(SYNTHETIC)
    obs, _ = env.reset(seed=0, options={"index": 0})
    policy = ScratchpadHeuristicPolicy(note_chars=400)
    first = None
    while obs["phase"] == Phase.READING:
        response = policy.act([obs])[0].text
        (pad,) = [op.text for op in parse_action(response).ops if op.kind == UPDATE_MEMORY]
        assert len(pad) <= 400 and (first is None or pad.startswith(first))  # the first notes stay
        first = first or pad
        obs, _, _, _, _ = env.step(response)
    assert 300 < len(obs["scratchpad"]) <= 400
