"""Ablations (atommem_env/ablations.py): the reference's named files, and the clean switches' advance rule.

The reference files (RUCBM/AtomMem e5a9b3d, ``AtomMem/recurrent/impls/ablation_impls/``) leave every
prompt text as it is (a removed memory's slot is ``""``, its header stays), ignore a disabled tag without
a word, and change k in some; each test below pins one of those behaviours.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.scripted import ScratchpadHeuristicPolicy
from atommem_env import prompts
from atommem_env.ablations import ABLATIONS, NONE, resolve_ablation
from atommem_env.env import ANSWERING, DONE, READING, MemoryQAEnv
from atommem_env.errors import ConfigError
from atommem_env.observation import Progress
from atommem_env.registration import make_synthetic_env
from tests.atommem_env.test_env_properties import RESPONSE
from tests.conftest import ToySource

ADD = "<add_memory>note</add_memory>"
SCRATCHPAD_HEADER = "This is your short term memory from the previous turn.\n"
MEMORY_HEADER = "This is current memory related to the query:\n"
QUERY_HEADER = "This is current query to retrieve memory from database:\n"


def many(n: int) -> str:
    return "".join(f"<add_memory>fact number {i}</add_memory>" for i in range(n))


def to_answering(env, obs, info):
    while info["phase"] == READING:
        obs, _, _, _, info = env.step(ADD)
    return obs, info


def test_every_name_maps_to_its_reference_file():
    files = {name: a.reference_file for name, a in ABLATIONS.items()}
    assert files == {
        "no_scratchpad": "memory_long_short_disable_STM.py", "no_store": "memory_long_short_disable_LTM.py",
        "no_both": "memory_long_short_disable_Both.py", "no_scratchpad_update": "memory_long_short_disable_update.py",
        "no_delete": "memory_long_short_disable_delete.py", "k3": "memory_long_short_k3.py",
        "k12": "memory_long_short_k12.py", "store_everything": "memory_long_short_alladd.py",
    }
    assert resolve_ablation(None) is NONE and resolve_ablation("k3") is ABLATIONS["k3"]


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_reference_ablations_keep_the_prompts_text(make_env, name):
    """No note in the system message, and every section header of both prompts stays."""
    env = make_env(ablation=name)
    obs, info = env.reset(seed=0)
    assert obs["system"] == prompts.SYSTEM_PROMPT and env.config.disabled_features() == ()
    for header in (SCRATCHPAD_HEADER, QUERY_HEADER, MEMORY_HEADER):
        assert header in obs["user"]
    obs, info = to_answering(env, obs, info)
    for header in (SCRATCHPAD_HEADER, QUERY_HEADER, MEMORY_HEADER):
        assert header in obs["user"]


def test_config_rejects_unknown_names_and_mixed_kinds(make_env):
    with pytest.raises(ConfigError, match="no_store"):
        make_env(ablation="no_ltm")
    with pytest.raises(ConfigError, match="clean switches"):
        make_env(ablation="no_store", show_scratchpad=False)
    with pytest.raises(ConfigError, match="sets k itself"):
        make_env(ablation="k3", top_k=5)
    env = make_env(ablation="no_store", top_k=4)  # an ablation that keeps k takes top_k
    assert env.config.retrieval_depth(reading=True) == env.config.retrieval_depth(reading=False) == 4
    assert make_env().config.ablation is None and make_env().config.ablation_rules is NONE


# ------------------------------------------------------------------------ disable_STM / LTM / Both
def test_no_scratchpad_blanks_the_slot_but_writes_still_run(make_env):
    env = make_env(ablation="no_scratchpad")
    env.reset(seed=0)
    env.step("<update_query>weather</update_query>")
    obs, _, _, _, info = env.step("<update_memory>secret plan</update_memory>")
    assert info["errors"] == [] and info["op_counts"]["scratchpad"] == 1 and not info["advanced"]
    assert env.memory.scratchpad == "secret plan" and obs["progress"][Progress.READS] == 0  # the write reset the reads
    assert obs["scratchpad"] == "" and "secret plan" not in obs["user"]
    assert SCRATCHPAD_HEADER + "\n" + "\n" + QUERY_HEADER in obs["user"]  # header, blank slot, next section
    obs, _ = to_answering(env, obs, info)
    assert obs["scratchpad"] == "" and "secret plan" not in obs["user"] and SCRATCHPAD_HEADER in obs["user"]


def test_no_store_adds_unseen_entries_and_still_advances(make_env):
    env = make_env(ablation="no_store")
    obs, _ = env.reset(seed=0)
    assert MEMORY_HEADER + "\n\n" in obs["user"] and prompts.NO_MEMORY not in obs["user"]
    obs, _, _, _, info = env.step("<update_query>Marrowfield</update_query>" + ADD)
    assert info["advanced"] and info["memory_size"] == 1 and info["errors"] == []
    assert obs["memories"] == () and obs["query"] == "Marrowfield" and "Marrowfield" in obs["user"]
    assert "note" not in obs["user"] and prompts.NO_MEMORY not in obs["user"]
    # Nothing is ever shown, so no rank resolves: under our protocol an error, no advance.
    obs, _, _, _, info = env.step("<modify_memory>Memory 1: changed</modify_memory><delete_memory>Memory 1"
                                  "</delete_memory>")
    assert [e["code"] for e in info["errors"]] == ["unknown_rank", "unknown_rank"] and not info["advanced"]
    assert info["memory_size"] == 1
    obs, _ = to_answering(env, obs, info)
    assert obs["memories"] == () and MEMORY_HEADER + "\n\n" in obs["user"]


def test_no_store_under_the_reference_protocol_is_disable_ltm(make_env):
    """There a modify that resolves nothing is silent and still moves on, as in the reference file."""
    env = make_env(ablation="no_store", protocol="reference")
    env.reset(seed=0)
    obs, _, _, _, info = env.step("<modify_memory>Memory 1: changed</modify_memory>")
    assert info["advanced"] and info["memory_size"] == 0 and "Feedback" not in obs["user"]


def test_no_both_blanks_both_slots(make_env):
    env = make_env(ablation="no_both")
    env.reset(seed=0)
    obs, _, _, _, info = env.step("<update_memory>plan</update_memory>" + ADD)
    assert info["advanced"] and info["memory_size"] == 1 and env.memory.scratchpad == "plan"
    assert obs["scratchpad"] == "" and obs["memories"] == () and "plan" not in obs["user"]
    assert SCRATCHPAD_HEADER + "\n\n" + QUERY_HEADER in obs["user"] and MEMORY_HEADER + "\n\n" in obs["user"]


# ------------------------------------------------------------------------- silently ignored tags
@pytest.mark.parametrize("name", ["no_scratchpad_update", "no_delete", "store_everything"])
def test_disabled_tags_are_ignored_without_a_word(make_env, name):
    tag = {"no_scratchpad_update": "<update_memory>plan</update_memory>",
           "no_delete": "<delete_memory>Memory 1</delete_memory>",
           "store_everything": "<add_memory>mine</add_memory>"}[name]
    env = make_env(ablation=name)
    env.reset(seed=0)
    env.step(ADD if name != "store_everything" else "<update_memory>x</update_memory>")
    obs, _, _, _, info = env.step("<update_query>weather</update_query>")
    size = info["memory_size"]
    obs, _, _, _, info = env.step(tag)
    assert info["errors"] == [] and info["num_invalid"] == 0 and "Feedback" not in obs["user"]
    assert [(o["ok"], o["error"]) for o in info["ops"]] == [(False, "ignored")]
    assert obs["progress"][Progress.READS] == 1  # an ignored write does not reset the read counter
    assert env.memory.scratchpad == ("x" if name == "store_everything" else "")
    if name == "no_delete":
        assert info["memory_size"] == size and not info["advanced"]
    if name == "store_everything":  # the model's add stores nothing of its own but still advances
        assert info["advanced"] and "mine" not in [e.text for e in env.memory.entries()]


def test_store_everything_adds_the_chunk_on_every_reading_turn(make_env):
    env = make_env(ablation="store_everything")
    obs, _ = env.reset(seed=0)
    documents = [d for d in obs["chunk"].split("Document") if d.strip()]
    _, _, _, _, info = env.step("<update_query>weather</update_query>")  # a re-read adds them again
    first = info["memory_size"]
    assert first >= 2 and not info["advanced"]
    _, _, _, _, info = env.step("<update_query>day</update_query>")
    assert info["memory_size"] == 2 * first and len(documents) == first
    obs, info = to_answering(env, obs, info)
    size = info["memory_size"]
    _, _, _, _, info = env.step("<update_query>Marrowfield</update_query>")
    assert info["memory_size"] == size  # no article in the answering prompt: nothing added


# ---------------------------------------------------------------------------------- k per phase
@pytest.mark.parametrize("name, reading_k, answering_k", [
    (None, 6, 6), ("no_scratchpad", 6, 6), ("k3", 3, 3), ("k12", 3, 12),
    ("no_scratchpad_update", 12, 12), ("no_delete", 12, 12),
])
def test_retrieval_depth_per_phase(make_env, name, reading_k, answering_k):
    env = make_env(ablation=name)
    env.reset(seed=0)
    obs, _, _, _, info = env.step(many(15))
    assert len(obs["memories"]) == reading_k and obs["user"].count("\nMemory ") == reading_k
    obs, info = to_answering(env, obs, info)
    assert info["phase"] == ANSWERING and len(obs["memories"]) == answering_k


def test_store_everything_retrieves_twelve(make_env):
    env = make_env(ablation="store_everything", chunk_tokens=200)
    env.reset(seed=0)
    for _ in range(2):  # re-reads: the chunk's documents again
        obs, _, _, _, info = env.step("<update_memory>x</update_memory>")
    assert info["memory_size"] > 12 and len(obs["memories"]) == 12
    assert env.config.retrieval_depth(reading=False) == 12


# --------------------------------------------------------------------------- clean switches: stall
def test_clean_hidden_store_advances_on_a_scratchpad_write(make_env):
    env = make_env(show_retrieval=False)
    assert env.config.advance_rule() == "scratchpad_write"
    env.reset(seed=0)
    _, _, _, _, info = env.step("<update_query>x</update_query><delete_memory>Memory 1</delete_memory>")
    assert not info["advanced"] and [e["code"] for e in info["errors"]] == ["disabled", "disabled"]
    _, _, _, _, info = env.step("<update_memory>notes</update_memory>")
    assert info["advanced"] and info["chunk_index"] == 1
    _, _, _, _, info = env.step(ADD)  # refused with feedback, but still "done with this chunk"
    assert info["advanced"] and info["chunk_index"] == 2 and [e["code"] for e in info["errors"]] == ["disabled"]


def test_clean_switches_without_any_write_advance_every_turn(make_env):
    for kwargs in ({"show_retrieval": False, "show_scratchpad": False},
                   {"show_retrieval": False, "freeze_scratchpad": True}):
        env = make_env(**kwargs)
        assert env.config.advance_rule() == "always"
        env.reset(seed=0)
        _, _, _, _, info = env.step("nothing at all")
        assert info["advanced"]
    assert make_env().config.advance_rule() == make_env(show_scratchpad=False).config.advance_rule() == "store_write"


def test_a_refused_query_uses_up_a_read_when_the_store_is_hidden(make_env):
    """SPEC §4: while answering, the 4th query of a question skips it; a query refused because the store
    is hidden counts the same, so it cannot loop. While reading the count stops at the limit."""
    env = make_env(show_retrieval=False)
    env.reset(seed=0)
    for reads in (1, 2, 3, 3):
        obs, _, _, _, info = env.step("<update_query>x</update_query>")
        assert obs["progress"][Progress.READS] == reads and [e["code"] for e in info["errors"]] == ["disabled"]
    obs, _, _, _, info = env.step("<update_memory>notes</update_memory>")
    assert info["advanced"] and obs["progress"][Progress.READS] == 0
    obs, info = to_answering(env, obs, info)
    for reads in (1, 2, 3):
        obs, _, _, _, info = env.step("<update_query>x</update_query>")
        assert obs["progress"][Progress.READS] == reads and info["question_index"] == 0
    obs, _, _, _, info = env.step("<update_query>x</update_query>")
    assert info["question_index"] == 1 or info["phase"] == DONE
    assert [e["code"] for e in info["errors"]] == ["too_many_reads"] and "skipped" in info["errors"][0]["message"]
    assert [(o["op"], o["ok"]) for o in info["ops"]] == [("update_query", False)]  # one record per tag


CLEAN_SWITCHES = st.fixed_dictionaries({}, optional={
    "show_scratchpad": st.just(False), "show_retrieval": st.just(False), "enable_update": st.just(False),
    "enable_delete": st.just(False), "freeze_scratchpad": st.just(True), "store_everything": st.just(True),
    "top_k": st.sampled_from([0, 3, 12]),
})
QUERY_LOOP = "<update_query>where was it</update_query>"
READ_ON = QUERY_LOOP + "<update_memory>notes</update_memory><add_memory>a fact</add_memory>"


@settings(max_examples=60)
@given(setting=st.one_of(CLEAN_SWITCHES, st.sampled_from([{"ablation": n} for n in sorted(ABLATIONS)])),
       protocol=st.sampled_from(["atommem", "reference"]), max_reads=st.integers(0, 3),
       index=st.integers(0, 5), seed=st.integers(0, 2**32 - 1))
def test_a_query_looping_policy_ends_before_the_turn_budget(setting, protocol, max_reads, index, seed):
    """A policy that queries every turn (writing while reading, so that every chunk is left) and never
    answers ends with every question skipped after max_reads + 1 queries each, under every clean switch
    and every named ablation: no setting lets a refused query loop until the turn budget."""
    env = MemoryQAEnv(ToySource(), chunk_tokens=60, chunk_overlap=5, max_reads=max_reads, protocol=protocol,
                      **setting)
    obs, info = env.reset(seed=seed, options={"index": index})
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(READ_ON if info["phase"] == READING else QUERY_LOOP)
    assert terminated and not truncated and info["turn"] < info["max_turns"]
    assert info["skipped"] == [True] * info["num_questions"] and reward == 0.0
    turns = info["num_chunks"] + (max_reads + 1) * info["num_questions"]
    # The reference's rules can skip a question while reading (a read beyond the limit there), so sooner.
    assert info["turn"] == turns if protocol == "atommem" else info["turn"] <= turns


# ------------------------------------------------------------------- a capable policy finishes them
SETTINGS = [{"ablation": name} for name in sorted(ABLATIONS)] + [
    {"show_retrieval": False}, {"show_retrieval": False, "show_scratchpad": False},
]


@pytest.mark.parametrize("options", SETTINGS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_a_capable_policy_finishes_every_ablation(options):
    """No stall: every episode ends with its questions answered, before the turn budget. With both
    memories gone nothing read is visible when answering, so only there the reward may be 0."""
    policy = ScratchpadHeuristicPolicy()
    total = 0.0
    for index in range(8):
        env = make_synthetic_env(num_documents=40, chunk_tokens=300, chunk_overlap=32, **options)
        obs, info = env.reset(seed=0, options={"index": index})
        terminated = truncated = False
        while not (terminated or truncated):
            obs, reward, terminated, truncated, info = env.step(policy.act([obs])[0].text)
        assert terminated and not truncated and info["chunk_index"] == info["num_chunks"]
        total += reward
    both_gone = options.get("ablation") == "no_both" or not (
        options.get("show_scratchpad", True) or options.get("show_retrieval", True))
    assert total > 0 or both_gone


@settings(max_examples=40)
@given(name=st.sampled_from(sorted(ABLATIONS)), protocol=st.sampled_from(["atommem", "reference"]),
       seed=st.integers(0, 2**32 - 1), responses=st.lists(RESPONSE, max_size=60))
def test_random_play_under_a_reference_ablation_keeps_the_invariants(name, protocol, seed, responses):
    env = MemoryQAEnv(ToySource(), chunk_tokens=60, chunk_overlap=5, ablation=name, protocol=protocol)
    obs, info = env.reset(seed=seed)
    for response in responses:
        obs, reward, terminated, truncated, info = env.step(response)
        assert obs in env.observation_space and 0.0 <= reward <= 1.0
        assert json.loads(json.dumps(info)) == info
        assert len(obs["memories"]) <= env.config.retrieval_depth(reading=obs["phase"] == 0)
        assert obs["system"] == prompts.SYSTEM_PROMPT
        if terminated or truncated:
            break
