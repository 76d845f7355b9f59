"""The AtomMem env ids in Ray Tune's env registry, so RLlib (and Tune) configs can name them by id.

    from agents.training.ray.tune_registry import register_with_tune
    register_with_tune()                                   # every AtomMem-* id
    config = PPOConfig().environment("AtomMem-Synthetic-v0", env_config={"num_documents": 6})

RLlib calls the registered creator with its ``env_config`` (an ``EnvContext``, a dict that also
carries the worker index); its keys are passed to ``gym.make`` as env options. RLlib's own models
cannot act in these envs: observations are dicts of text and actions are free text (see
docs/DISTRIBUTED.md, "RLlib"); this registration serves RLlib users who bring a text policy of their
own, and Tune sweeps over env options.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import gymnasium as gym

import atommem_env


def register_with_tune(env_ids: Sequence[str] | None = None) -> list[str]:
    """Register ``env_ids`` (default: every AtomMem id) with ``ray.tune.registry``; returns them.

    Raises:
        gymnasium.error.Error: an id that is not registered (with gymnasium's "Did you mean" hint).
    """
    from ray.tune.registry import register_env

    ids = list(env_ids) if env_ids is not None else atommem_env.registered_ids()
    for env_id in ids:
        gym.spec(env_id)  # fails here, naming the id, rather than inside an RLlib worker later
        register_env(env_id, partial(make_env, env_id))
    return ids


def make_env(env_id: str, env_config: Mapping[str, Any] | None = None) -> gym.Env:
    """The creator Tune calls: ``gym.make(env_id, **env_config)`` (RLlib's extra context is not an option)."""
    return gym.make(env_id, **dict(env_config or {}))
