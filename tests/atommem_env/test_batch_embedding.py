"""atommem_env/batch_embedding.py and embedders/batch.py: a batch of envs embeds a turn's texts in one
call per embedder and kind, and every env plays exactly as it does stepped alone."""

from __future__ import annotations

import pickle
import re

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atommem_env.batch_embedding import BatchEmbedding
from atommem_env.datasets.synthetic import SyntheticSource
from atommem_env.embedders import HashingEmbedder
from atommem_env.embedders.batch import TurnCache
from atommem_env.env import MemoryQAEnv
from atommem_env.errors import ConfigError
from atommem_env.tool_calls import tags_to_tool_calls

_DOC = re.compile(r"(?:^|\n\n)Document \d+:\n")


class Counting(HashingEmbedder):
    """A hashing embedder that records the size and kind of every ``embed`` call."""

    def __init__(self, dim: int = 1024) -> None:
        super().__init__(dim=dim)
        self.calls: list[tuple[int, bool]] = []

    def embed(self, texts, *, query=False):
        self.calls.append((len(texts), query))
        return super().embed(texts, query=query)


# --- the hashing embedder: a row is its own text's, however many texts share the call ----------------

_words = st.sampled_from(["Orin", "Vale", "born", "in", "the", "Quenhaven", "film", "É", "x", "ß", "1987"])
_texts = st.lists(_words, max_size=30).map(" ".join) | st.text(max_size=60)


@settings(max_examples=60, deadline=None)
@given(st.lists(_texts, min_size=1, max_size=40), st.sampled_from([8, 64, 1024]), st.booleans())
def test_embedding_texts_together_gives_each_row_bit_for_bit(texts, dim, bigrams):
    embedder = HashingEmbedder(dim=dim, bigrams=bigrams)
    together = embedder.embed(texts)
    alone = np.concatenate([HashingEmbedder(dim=dim, bigrams=bigrams).embed([t]) for t in texts])
    assert together.dtype == np.float32 and together.shape == (len(texts), dim)
    assert np.array_equal(together.view(np.int32), alone.view(np.int32))  # bits, signed zeros included


def test_hashing_embedders_with_the_same_settings_are_equal():
    assert HashingEmbedder() == HashingEmbedder() and hash(HashingEmbedder()) == hash(HashingEmbedder())
    assert HashingEmbedder(dim=64) != HashingEmbedder() and HashingEmbedder(bigrams=False) != HashingEmbedder()
    assert HashingEmbedder() != "hashing"


# --- TurnCache ---------------------------------------------------------------------------------------


def test_a_turn_cache_serves_held_rows_and_embeds_the_rest_in_one_call():
    base = Counting(dim=64)
    cache = TurnCache(base)
    assert (cache.name, cache.dim, cache.sparse) == ("hashing", 64, True)
    cache.hold(["fact one", "fact two", "fact one"], ["who is Orin"])
    assert base.calls == [(2, False), (1, True)]  # duplicates embedded once
    base.calls.clear()
    out = cache.embed(["fact two"])
    assert base.calls == [] and np.array_equal(out, HashingEmbedder(dim=64).embed(["fact two"]))
    out[:] = 0  # the caller's own array: the held row is untouched
    assert cache.embed(["fact two"]).any()
    mixed = ["fact one", "new", "other"]
    assert np.array_equal(cache.embed(mixed), HashingEmbedder(dim=64).embed(mixed))
    assert base.calls == [(2, False)]
    base.calls.clear()
    cache.embed(["who is Orin"])  # held as a query, not as an entry
    assert base.calls == [(1, False)]
    cache.warm(["a response's entry", "fact one"])
    assert base.calls[-1] == (1, False)
    cache.hold([], [])  # a new turn forgets the last one's vectors
    base.calls.clear()
    cache.embed(["fact one"])
    assert base.calls == [(1, False)]


def test_a_pickled_turn_cache_carries_no_vectors():
    cache = TurnCache(HashingEmbedder(dim=32))
    cache.hold(["kept for one turn"], [])
    copy = pickle.loads(pickle.dumps(cache))
    assert copy._held == {} and copy.base == cache.base and cache._held


# --- BatchEmbedding over envs --------------------------------------------------------------------------


def _env(embedder="hashing", **options):
    source = SyntheticSource(num_documents=24, num_episodes=6)
    return MemoryQAEnv(source, embedder=embedder, chunk_tokens=200, **options)


def test_envs_with_equal_embedders_share_one_cache_and_others_keep_their_own():
    envs = [gym.make("AtomMem-Synthetic-v0"), _env(), _env(HashingEmbedder(dim=64)), _env(HashingEmbedder(dim=64))]
    minilm_like = Counting(dim=32)
    envs += [_env(minilm_like), _env(minilm_like)]
    BatchEmbedding(envs)
    caches = [env.unwrapped.embedder for env in envs]
    assert all(isinstance(c, TurnCache) for c in caches)
    assert caches[0] is caches[1] and caches[2] is caches[3] and caches[4] is caches[5]
    assert len({id(c) for c in caches}) == 3 and caches[4].base is minilm_like
    BatchEmbedding(envs)  # again (a Ray worker's envs serve many rollouts): no cache around a cache
    assert isinstance(envs[0].unwrapped.embedder.base, HashingEmbedder)


def test_envs_without_embedding_requests_step_as_they_are():
    memagent = gym.make("AtomMem-MemAgent-Synthetic-v0")
    batch = BatchEmbedding([memagent, _env()])
    memagent.reset(seed=0)
    batch.prefetch({0: "<update_memory>notes</update_memory>"})  # nothing to embed for it, no error
    memagent.step("<update_memory>notes</update_memory>")


def test_an_env_only_switches_to_an_embedder_with_the_same_vectors():
    env = _env()
    with pytest.raises(ConfigError, match="differ in size or layout"):
        env.use_embedder(HashingEmbedder(dim=64))


def _scripted(obs, rng, tools):
    """A response in the shape of SPEC §9's operation mix, with the odd refused or empty op."""
    docs = [d.strip() for d in _DOC.split(obs["chunk"]) if d.strip()] or ["Orin Vale was born in Quenhaven."]
    pick = lambda: docs[int(rng.integers(len(docs)))]  # noqa: E731
    parts = [f"<update_memory>notes: {pick()[:80]}</update_memory>"]
    if rng.random() < 0.4:
        parts.append(f"<update_query>{' '.join(pick().split()[:6])}</update_query>")
    if obs["phase"] == 1:  # answering
        if rng.random() < 0.6:
            parts.append(f"<final_answer>{pick().split()[0]}</final_answer>")
        return "\n".join(parts)
    parts += [f"<add_memory>{pick()}</add_memory>" for _ in range(int(rng.integers(0, 5)))]
    if rng.random() < 0.1 and not tools:  # (a tool call cannot be empty)
        parts.append("<add_memory>  </add_memory>")  # refused: empty
    if rng.random() < 0.3:
        parts.append(f"<modify_memory>Memory {rng.integers(0, 8)}: {pick()}</modify_memory>")
    if rng.random() < 0.1:
        parts.append(f"<delete_memory>Memory {rng.integers(1, 8)}</delete_memory>")
    return "\n".join(parts)


def _action(obs, episode, turn, tools):
    text = _scripted(obs, np.random.default_rng([episode, turn]), tools)  # the same whoever steps it, and when
    return tags_to_tool_calls(text) if tools else text


def _record(out):
    obs, reward, terminated, truncated, info = out
    return ({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in obs.items()}, reward, terminated,
            truncated, info)


def _start(env, episode):
    obs, info = env.reset(seed=episode, options={"index": episode % 6})
    return _record((obs, 0.0, False, False, info))


def _memory(env):
    store = env.memory
    entries = [(e.id, e.text) for e in store.entries()]
    return entries, [(e.id, e.score) for e in store.search("Orin Vale born film", 50)], store.scratchpad


def _alone(options, episodes, tools):
    played = []
    for episode in range(episodes):
        env = _env(**options)
        steps = [_start(env, episode)]
        turn = 0
        while True:
            out = env.step(_action(steps[-1][0], episode, turn, tools))
            steps.append(_record(out))
            turn += 1
            if out[2] or out[3]:
                break
        played.append((steps, _memory(env)))
    return played


def _together(options, episodes, tools, embedder):
    envs = [_env(embedder, **options) for _ in range(episodes)]
    batch = BatchEmbedding(envs)
    steps = [[_start(env, e)] for e, env in enumerate(envs)]
    live, turn = set(range(episodes)), 0
    while live:
        actions = {e: _action(steps[e][-1][0], e, turn, tools) for e in sorted(live)}
        batch.prefetch(actions)
        for e, action in actions.items():
            out = envs[e].step(action)
            steps[e].append(_record(out))
            if out[2] or out[3]:
                live.discard(e)
        turn += 1
    batch.release()
    calls = list(embedder.calls)
    return [(s, _memory(env)) for s, env in zip(steps, envs, strict=True)], turn, calls


@pytest.mark.parametrize("options", [
    {}, {"protocol": "reference"}, {"ablation": "store_everything"}, {"ablation": "no_store"},
    {"store_everything": True, "top_k": 3}, {"capacity": 5, "enable_update": False}, {"action_format": "tools"},
], ids=["paper", "reference", "alladd", "no_store", "store_everything", "capacity", "tools"])
def test_a_batch_plays_every_episode_exactly_as_stepping_it_alone(options):
    episodes, tools = 6, options.get("action_format") == "tools"
    embedder = Counting()
    together, turns, calls = _together(options, episodes, tools, embedder)
    alone = _alone(options, episodes, tools)
    for (steps_t, memory_t), (steps_a, memory_a) in zip(together, alone, strict=True):
        assert steps_t == steps_a  # observations, rewards, terminations, infos: every step
        assert memory_t == memory_a  # entries, their retrieval scores (exact floats), the scratchpad
    if "store_everything" not in str(options):  # (those store a chunk's documents in a call per env)
        assert len(calls) <= 2 * turns  # at most one call per kind (entries, queries) and turn
