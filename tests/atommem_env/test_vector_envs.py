"""Vector envs: sync and async (gymnasium's defaults, shared memory on) give what single envs give."""

from __future__ import annotations

import copy
import gc
import multiprocessing

import gymnasium as gym
import numpy as np
import pytest

import atommem_env  # noqa: F401  (registers the ids)
from atommem_env.shared_observations import ObservationSpace, SharedObservations

ENV_IDS = ["AtomMem-Synthetic-Tiny-v0", "AtomMem-MemAgent-Synthetic-v0"]
ACTIONS = [
    "<add_memory>Fact one.</add_memory>",
    "<update_query>director</update_query>",
    "no tags at all",
    "<update_memory>summary</update_memory><add_memory>Fact two.</add_memory>",
    "<final_answer>\\boxed{yes}</final_answer>",
    "<delete_memory>Memory 1</delete_memory>",
]


def _same(a: dict, b: dict) -> bool:
    if set(a) != set(b):
        return False
    return all(np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k] for k in a)


def _single_batches(env_id: str, n: int, seed: int, steps: int) -> list[tuple[dict, np.ndarray]]:
    """What n single envs give, batched by hand: the reference the vector envs must equal."""
    envs = [gym.make(env_id) for _ in range(n)]
    space = envs[0].observation_space
    batches = []
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    batches.append((obs, np.zeros(n)))
    done = [False] * n
    for t in range(steps):
        rows, rewards = [], []
        for i, env in enumerate(envs):
            if done[i]:  # gymnasium's default autoreset (next step): this step resets
                rows.append(env.reset()[0])
                rewards.append(0.0)
                done[i] = False
                continue
            o, r, term, trunc, _ = env.step(ACTIONS[(t + i) % len(ACTIONS)])
            rows.append(o)
            rewards.append(r)
            done[i] = term or trunc
        batches.append((rows, np.array(rewards)))
    out = []
    for rows, rewards in batches:
        empty = gym.vector.utils.create_empty_array(space, n=n)
        out.append((gym.vector.utils.concatenate(space, rows, empty), rewards))
    return out


def _vector_batches(vec: gym.vector.VectorEnv, n: int, seed: int, steps: int) -> list[tuple[dict, np.ndarray]]:
    out = [(vec.reset(seed=[seed + i for i in range(n)])[0], np.zeros(n))]
    for t in range(steps):
        obs, rewards, *_ = vec.step([ACTIONS[(t + i) % len(ACTIONS)] for i in range(n)])
        out.append((obs, rewards))
    vec.close()
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize(
    "mode, vector_kwargs",
    [("sync", {}), ("async", {}), ("async", {"shared_memory": False})],
    ids=["sync", "async-default", "async-no-shared-memory"],
)
def test_vector_env_equals_single_envs(env_id: str, mode: str, vector_kwargs: dict) -> None:
    """gym.make_vec with gymnasium's default settings works and equals single envs step for step."""
    n, seed, steps = 3, 11, 14
    expected = _single_batches(env_id, n, seed, steps)
    vec = gym.make_vec(env_id, n, vectorization_mode=mode, vector_kwargs=vector_kwargs)
    got = _vector_batches(vec, n, seed, steps)
    for t, ((want_obs, want_r), (obs, r)) in enumerate(zip(expected, got, strict=True)):
        assert isinstance(obs, dict), t  # copy=True (the default) hands out a plain batch, not a view
        assert _same(want_obs, obs), f"observations differ at step {t}"
        np.testing.assert_array_equal(want_r, r)


def test_async_spawn_context_works() -> None:
    """The slots travel to workers started with spawn (no fork), as on macOS and Windows."""
    vec = gym.make_vec("AtomMem-Synthetic-Tiny-v0", 2, vectorization_mode="async",
                       vector_kwargs={"context": "spawn"})
    expected = _single_batches("AtomMem-Synthetic-Tiny-v0", 2, 3, 4)
    got = _vector_batches(vec, 2, 3, 4)
    assert all(_same(a[0], b[0]) for a, b in zip(expected, got, strict=True))


def test_copy_false_hands_out_a_live_view() -> None:
    """With copy=False the batch is a view that shows the newest step, as gymnasium's buffers do."""
    vec = gym.make_vec("AtomMem-Synthetic-Tiny-v0", 2, vectorization_mode="async", vector_kwargs={"copy": False})
    view, _ = vec.reset(seed=0)
    assert isinstance(view, SharedObservations)
    before = copy.deepcopy(view)
    assert isinstance(before, dict) and _same(before, view.snapshot())
    vec.step(["<add_memory>A fact.</add_memory>"] * 2)
    assert not np.array_equal(before["progress"], view["progress"])  # the view moved on
    assert set(view) == set(before) and len(view) == len(before)
    vec.close()


def test_observation_space_is_a_dict_space() -> None:
    """Wrappers, checkers and RLlib see a plain gymnasium Dict."""
    env = gym.make("AtomMem-Synthetic-Tiny-v0")
    assert isinstance(env.observation_space, ObservationSpace)
    assert isinstance(env.observation_space, gym.spaces.Dict)
    assert env.observation_space == gym.spaces.Dict(env.observation_space.spaces)


def test_closed_async_env_leaves_no_process() -> None:
    """The slots' manager process goes with the vector env."""
    before = len(multiprocessing.active_children())
    vec = gym.make_vec("AtomMem-Synthetic-Tiny-v0", 2, vectorization_mode="async")
    vec.reset(seed=0)
    vec.close()
    del vec
    gc.collect()
    assert len(multiprocessing.active_children()) == before
