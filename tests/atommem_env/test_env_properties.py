"""Env invariants under random action sequences (hypothesis)."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atommem_env.env import MemoryQAEnv
from tests.conftest import ToySource

WORDS = st.sampled_from(["Marrowfield", "Ilsa", "weather", "Odo", "day", "born", "founded", ""])
PHRASE = st.lists(WORDS, max_size=4).map(" ".join)
TAGGED = st.one_of(
    PHRASE.map(lambda t: f"<add_memory>{t}</add_memory>"),
    PHRASE.map(lambda t: f"<update_memory>{t}</update_memory>"),
    PHRASE.map(lambda t: f"<update_query>{t}</update_query>"),
    st.tuples(st.integers(0, 8), PHRASE).map(lambda r: f"<modify_memory>Memory {r[0]}: {r[1]}</modify_memory>"),
    st.integers(0, 8).map(lambda r: f"<delete_memory>Memory {r}</delete_memory>"),
    PHRASE.map(lambda t: f"<final_answer>\\boxed{{{t}}}</final_answer>"),
    st.sampled_from(["<think>", "</think>", "<add_memory>", "nonsense"]),
    st.text(max_size=20),
)
RESPONSE = st.lists(TAGGED, max_size=4).map("".join)
OPTIONS = st.fixed_dictionaries(
    {
        "chunk_tokens": st.integers(30, 200),
        "top_k": st.sampled_from([0, 3, 6, 12]),
        "advance": st.sampled_from(["on_write", "always"]),
        "show_scratchpad": st.booleans(),
        "show_retrieval": st.booleans(),
        "enable_delete": st.booleans(),
        "capacity": st.sampled_from([None, 2]),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options=OPTIONS, seed=st.integers(0, 2**32 - 1), responses=st.lists(RESPONSE, max_size=200))
def test_random_play_keeps_every_invariant(options, seed, responses):
    env = MemoryQAEnv(ToySource(), chunk_overlap=5, **options)
    obs, info = env.reset(seed=seed)
    budget = info["max_turns"]
    ended = False
    for turn, response in enumerate(responses, start=1):
        obs, reward, terminated, truncated, info = env.step(response)
        assert obs in env.observation_space
        assert 0.0 <= reward <= 1.0
        assert json.loads(json.dumps(info)) == info
        assert turn <= budget
        assert options["capacity"] is None or info["memory_size"] <= options["capacity"]
        if terminated or truncated:
            assert "em" in info and reward == sum(info["em"]) / len(info["em"])
            ended = True
            break
        assert reward == 0.0
    if not ended:  # the budget always ends an episode: keep stepping with no-ops
        for _ in range(budget):
            _, _, terminated, truncated, _ = env.step("")
            if terminated or truncated:
                ended = True
                break
    assert ended


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), responses=st.lists(RESPONSE, min_size=1, max_size=30))
def test_two_envs_side_by_side_never_share_memory(seed, responses):
    a = MemoryQAEnv(ToySource(), chunk_tokens=60, chunk_overlap=5)
    b = MemoryQAEnv(ToySource(), chunk_tokens=60, chunk_overlap=5)
    a.reset(seed=seed)
    b.reset(seed=seed)
    for response in responses:
        a.step(response)
        if a.unwrapped._phase == "done":
            break
        assert len(b.memory) == 0 and b.memory.scratchpad == ""
