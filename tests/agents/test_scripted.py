"""The scripted baselines of agents/scripted.py that need more than the shared protocol tests."""

from __future__ import annotations

import hashlib
import json

import gymnasium as gym
import pytest

import atommem_env  # noqa: F401  (registers the ids)
from agents import BASELINES, HeuristicMemoryPolicy, ScratchpadHeuristicPolicy, make_policy
from agents.controller.evaluation import play_config
from agents.controller.workflows import WORKFLOWS
from agents.scripted import first_lines
from agents.training.metrics import summarize
from agents.training.rollout import rollout
from atommem_env.actions import UPDATE_MEMORY, parse_action
from atommem_env.observation import Phase
from benchmarks.bench_scripted import matcher
from tests.conftest import shared_data_dir

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


# ------------------------------------------------- trajectories pinned to the regex matcher (issue #19)
# agents/text.py's matcher replaced one regex per (name, text) pair; every scripted policy built on it must
# play exactly as before. "before" swaps the old regex matcher back in (benchmarks/bench_scripted.py).
def _both_matchers(play, *args, **kwargs):
    with matcher("before"):
        before = play(*args, **kwargs)
    after = play(*args, **kwargs)
    assert after == before and before  # whole trajectories: responses, ops, errors, rewards, results


def _play(env_id, name, indices, **options):
    make = lambda: gym.make(env_id, **options)  # noqa: E731
    return [t.to_json() for t in rollout(make, BASELINES[name](), list(range(len(indices))), indices=indices)]


@pytest.mark.parametrize(("env_id", "options"), [
    (SYNTHETIC, {}), (SYNTHETIC, {"show_retrieval": False}), (SYNTHETIC, {"action_format": "tools"}),
    ("AtomMem-MemAgent-Synthetic-v0", {})], ids=["atommem", "no-retrieval", "tools", "memagent"])
@pytest.mark.parametrize("name", ["heuristic", "heuristic-scratchpad", "no-memory"])
def test_scripted_policies_play_as_with_the_regex_matcher(name, env_id, options):
    _both_matchers(_play, env_id, name, list(range(8)), **options)


@pytest.mark.parametrize("workflow", sorted(WORKFLOWS))
def test_workflows_play_as_with_the_regex_matcher(workflow):
    _both_matchers(lambda: [t.to_json() for t in play_config({"env_id": SYNTHETIC}, WORKFLOWS[workflow], 8)])


# sha256 (first 16 hex digits) of every action of episodes 0-7, played at commit 23d962c, before the new
# matcher and its callers: pins the restructured callers too, which the comparison above runs on both
# sides. A deliberate change of the env or of a policy changes these; recompute them with _digest.
RECORDED = {
    (SYNTHETIC, "heuristic"): "c9a518cd8b9cd9e1",
    (SYNTHETIC, "heuristic-scratchpad"): "41505352fefd63a9",
    ("AtomMem-MemAgent-Synthetic-v0", "heuristic"): "beb440ab64c3bce7",
    ("AtomMem-MemAgent-Synthetic-v0", "heuristic-scratchpad"): "29a2676bac4687db",
    ("workflow", "store-then-answer"): "6e1ba91bdebaa1c0",
    ("workflow", "memagent-overwrite"): "f08c0977eec23387",
}


def _digest(trajectories):
    digest = hashlib.sha256()
    for turn in (turn for t in trajectories for turn in t["turns"]):
        action = turn["tool_calls"] if turn["tool_calls"] is not None else turn["response"]
        digest.update(json.dumps(action).encode() + b"\0")
    return digest.hexdigest()[:16]


@pytest.mark.parametrize(("env_id", "name"), sorted(RECORDED))
def test_scripted_policies_play_as_they_did_before_the_new_matcher(env_id, name):
    if env_id == "workflow":
        played = [t.to_json() for t in play_config({"env_id": SYNTHETIC}, WORKFLOWS[name], 8)]
    else:
        played = _play(env_id, name, list(range(8)))
    assert _digest(played) == RECORDED[(env_id, name)]


REAL = [(f"AtomMem-{protocol}{dataset}-{{}}-v0", name) for protocol in ("", "MemAgent-")
        for dataset in ("HotpotQA", "2WikiMultihopQA", "MuSiQue") for name in ("heuristic", "heuristic-scratchpad")]


@pytest.fixture(scope="module")
def data_dir():
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data is absent: this comparison needs the real benchmark records")
    return str(data)


@pytest.mark.parametrize(("env_id", "name"), REAL)
def test_scripted_policies_play_real_episodes_as_with_the_regex_matcher(data_dir, env_id, name):
    _both_matchers(_play, env_id.format(200), name, [0, 37], data_dir=data_dir)


@pytest.mark.slow
@pytest.mark.parametrize(("env_id", "name"), REAL)
def test_scripted_policies_play_800_document_episodes_as_with_the_regex_matcher(data_dir, env_id, name):
    _both_matchers(_play, env_id.format(800), name, [0, 20, 40], data_dir=data_dir)
