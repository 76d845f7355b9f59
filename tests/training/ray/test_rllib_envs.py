"""agents/training/ray/tune_registry.py: the env ids in Ray Tune's registry, made by id with RLlib's env_config."""

from __future__ import annotations

import gymnasium as gym
import pytest

pytest.importorskip("ray.tune", reason="Tune registration needs ray[tune] (pip install -e '.[ray]')")

import atommem_env  # noqa: E402
from agents.training.ray.tune_registry import register_with_tune  # noqa: E402


def test_every_id_registers_and_builds_from_an_env_config():
    from ray.tune.registry import ENV_CREATOR, _global_registry

    assert register_with_tune() == atommem_env.registered_ids()
    for env_id in ("AtomMem-Synthetic-v0", "AtomMem-HotpotQA-400-v0", "AtomMem-MemAgent-Synthetic-v0"):
        assert _global_registry.contains(ENV_CREATOR, env_id)
    env = _global_registry.get(ENV_CREATOR, "AtomMem-Synthetic-v0")({"num_documents": 2, "chunk_tokens": 128})
    obs, info = env.reset(seed=0)
    assert env.spec.id == "AtomMem-Synthetic-v0" and "user" in obs and info["episode_id"]
    assert env.unwrapped.source.num_documents == 2  # the env_config reached gym.make


def test_a_misspelled_id_is_refused_with_a_suggestion():
    with pytest.raises(gym.error.Error, match="Did you mean"):
        register_with_tune(["AtomMem-Synthetc-v0"])
