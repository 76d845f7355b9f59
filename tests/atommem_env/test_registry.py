"""Registry-driven suite tests: every registered id (SPEC, DESIGN "Tests").

Real-benchmark ids read ``../shared/data`` when it is there, and otherwise the small official-format
files of ``tests/fixtures/data`` (as in CI), so no id is ever skipped.
"""

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import NameNotFound
from gymnasium.utils.env_checker import check_env

import atommem_env
from agents import RandomPolicy
from atommem_env.errors import DataError
from atommem_env.observation import Phase, Progress
from tests.conftest import shared_data_dir
from tests.support.datasets import FIXTURES

SYNTHETIC = "AtomMem-Synthetic-v0"
MEMAGENT_SYNTHETIC = "AtomMem-MemAgent-Synthetic-v0"
TINY = "AtomMem-Synthetic-Tiny-v0"
ALL_IDS = atommem_env.registered_ids()
# The fixture files hold a few records each, so each dev split's pool has only a handful of paragraphs.
# A benchmark source refuses a num_documents larger than its pool (a DataError, rather than a shorter
# context than asked; see test_the_fixtures_are_too_small_for_the_registered_document_counts), so on
# the fixtures a real id reads the whole pool instead of its 200/400/800 documents. Everything else
# (protocol, adapter, file layout, the other registered defaults) is the id's own.
FIXTURE_POOL = {"hotpotqa": 10, "2wikimultihopqa": 4, "musique": 5}


def make(env_id, **kwargs):
    if atommem_env.needs_data(env_id):
        data = shared_data_dir()
        if data is None:
            data = FIXTURES
            kwargs.setdefault("num_documents", FIXTURE_POOL[gym.spec(env_id).kwargs["benchmark"]])
        kwargs.setdefault("data_dir", str(data))
    return gym.make(env_id, **kwargs)


def test_every_expected_id_is_registered():
    for bench in ("HotpotQA", "2WikiMultihopQA", "MuSiQue"):
        for suffix in ("", "-200", "-400", "-800"):
            assert f"AtomMem-{bench}{suffix}-v0" in ALL_IDS
            assert f"AtomMem-MemAgent-{bench}{suffix}-v0" in ALL_IDS
    assert SYNTHETIC in ALL_IDS and MEMAGENT_SYNTHETIC in ALL_IDS
    assert [i for i in ALL_IDS if not atommem_env.needs_data(i)] == [SYNTHETIC, TINY, MEMAGENT_SYNTHETIC]


def test_the_tiny_id_is_synthetic_with_the_small_cpu_options():
    tiny = gym.make(TINY)
    spelled_out = gym.make(SYNTHETIC, num_documents=4, chunk_tokens=128, prompt_style="compact")
    assert tiny.unwrapped.source.num_documents == 4 and tiny.unwrapped.config.chunk_tokens == 128
    for index in (0, 7):
        a, _ = tiny.reset(seed=index, options={"index": index})
        b, _ = spelled_out.reset(seed=index, options={"index": index})
        assert a["system"] == b["system"] and a["user"] == b["user"]
    held_out = gym.make(TINY, seed_salt=1)  # its options still override the registered ones
    assert held_out.unwrapped.source.seed_salt == 1


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_check_env_passes_without_warnings(env_id):
    env = make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


def rollout_trace(env_id, seed, steps=25):
    env = make(env_id)
    policy = RandomPolicy(seed=seed)
    obs, info = env.reset(seed=seed)
    trace = [obs["user"], info]
    for _ in range(steps):
        obs, reward, term, trunc, info = env.step(policy.act([obs])[0].text)
        trace += [obs["user"], obs["memories"], reward, term, trunc, info]
        if term or trunc:
            break
    return trace


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_two_envs_with_the_same_seed_give_identical_rollouts(env_id):
    assert rollout_trace(env_id, 7) == rollout_trace(env_id, 7)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_pickle_round_trip_mid_episode(env_id):
    env = make(env_id)
    policy = RandomPolicy(seed=1)
    obs, _ = env.reset(seed=3)
    # Into the episode, but with turns left: the clone must then continue exactly like the original.
    # (A MemAgent Synthetic episode is 4 chunks + 1 question long; a fixture episode may be 1 chunk long.)
    for _ in range(5):
        if obs["phase"] != Phase.READING or obs["progress"][Progress.CHUNK] + 1 >= obs["progress"][Progress.CHUNKS]:
            break
        obs, *_ = env.step(policy.act([obs])[0].text)
    clone = pickle.loads(pickle.dumps(env))
    for action in ["<add_memory>x</add_memory>", "<update_query>x</update_query>", "junk"]:
        a, b = env.step(action), clone.step(action)
        assert a[0]["user"] == b[0]["user"] and a[1:] == b[1:]
        np.testing.assert_equal(a[0], b[0])
        if a[2] or a[3]:
            break


def test_real_ids_register_their_document_counts():
    for env_id in filter(atommem_env.needs_data, ALL_IDS):
        suffix = env_id.removesuffix("-v0").rsplit("-", 1)[-1]
        assert gym.spec(env_id).kwargs["num_documents"] == (int(suffix) if suffix.isdigit() else 200)


def test_the_fixtures_are_too_small_for_the_registered_document_counts():
    with pytest.raises(DataError, match="num_documents=200"):
        gym.make("AtomMem-HotpotQA-v0", data_dir=str(FIXTURES))


def test_misspelled_id_suggests_the_closest():
    with pytest.raises(NameNotFound, match="Did you mean: `AtomMem-HotpotQA`"):
        gym.make("AtomMem-HotpotQa-v0")


def test_real_id_without_data_says_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.delenv("ATOMMEM_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="data_dir"):
        gym.make("AtomMem-MuSiQue-v0", data_dir=str(tmp_path))


def test_make_passes_env_options_and_rejects_unknown_ones():
    env = gym.make(SYNTHETIC, top_k=3, num_documents=20)
    assert env.unwrapped.config.top_k == 3 and env.unwrapped.source.num_documents == 20
    with pytest.raises(atommem_env.ConfigError, match="top_k"):
        gym.make(SYNTHETIC, topk=3)


@pytest.mark.parametrize("env_id, typo, meant", [
    (SYNTHETIC, "num_document", "num_documents"),
    (SYNTHETIC, "questions_per_episod", "questions_per_episode"),
    (SYNTHETIC, "hop", "hops"),
    (MEMAGENT_SYNTHETIC, "seed_sal", "seed_salt"),
    ("AtomMem-HotpotQA-200-v0", "shufle", "shuffle"),
    ("AtomMem-HotpotQA-200-v0", "data_dirr", "data_dir"),
    ("AtomMem-MemAgent-MuSiQue-v0", "memory_token", "memory_tokens"),
    ("AtomMem-2WikiMultihopQA-800-v0", "top_kk", "top_k"),
])
def test_a_misspelt_option_is_named_before_any_data_is_looked_up(env_id, typo, meant, monkeypatch):
    import atommem_env.datasets

    monkeypatch.setattr(atommem_env.datasets, "load_benchmark", lambda *a, **k: pytest.fail("data was looked up"))
    with pytest.raises(atommem_env.ConfigError, match=f"option '{typo}'. Did you mean '{meant}'\\?") as error:
        gym.make(env_id, **{typo: 1})
    # The list names the env's and the source's options alike.
    assert "env: tokenizer" in str(error.value) and "source: num_documents" in str(error.value)


def test_a_benchmark_option_on_a_synthetic_id_says_so():
    with pytest.raises(atommem_env.ConfigError, match="'data_dir' \\(an option of the real-benchmark ids"):
        gym.make(SYNTHETIC, data_dir="../shared/data")
    with pytest.raises(atommem_env.ConfigError, match="Did you mean 'shuffle' \\(an option of the real-benchmark"):
        gym.make(SYNTHETIC, shufle=True)
