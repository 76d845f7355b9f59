"""Play controller policies (static workflows, random, a learned RLlib module) on ControllerEnv episodes.

Episodes are recorded as :class:`~agents.training.rollout.Trajectory` objects (the response is the macro's
action text; ``result["macros"]`` lists the macros chosen and ``result["situations"]`` the
:func:`situation` each was chosen in), so :func:`agents.training.metrics.summarize`
gives the same EM and operation rates as for text policies. Episode i of an env id is the source's
episode i reset with seed ``seed + i``, as in ``experiments/evaluate.py``, so every policy sees the same
episodes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import atommem_env
from agents.controller.env import FEATURE_INDEX, ControllerEnv, action_mask, make_controller_env
from agents.controller.macros import MACROS
from agents.controller.workflows import ControllerPolicy
from agents.training.rollout import Trajectory, Turn
from atommem_env.datasets.sources import canonical_split
from atommem_env.errors import ConfigError

RESULT_KEYS = ("answers", "golds", "skipped", "em", "f1", "substring_em", "reward")


def play(env: ControllerEnv, policy: ControllerPolicy, seeds: Sequence[int], indices: Sequence[int],
         env_id: str = "") -> list[Trajectory]:
    """One episode per (seed, index), the policy choosing a macro from (features, text observation)."""
    if len(seeds) != len(indices):
        raise ValueError(f"{len(seeds)} seeds for {len(indices)} indices: pass one seed per episode.")
    trajectories = []
    for seed, index in zip(seeds, indices, strict=True):
        features, info = env.reset(seed=int(seed), options={"index": int(index)})
        traj = Trajectory(env_id, int(seed), info["episode_id"], info["index"], system="")
        macros, situations, done = [], [], False
        while not done:
            situations.append(situation(features, env.base.config.max_reads))
            action = policy(features, env.text_observation)
            features, reward, terminated, truncated, info = env.step(action)
            traj.turns.append(Turn(user="", response=info["action"], ops=info["ops"], errors=info["errors"],
                                   op_counts=info["op_counts"], memory_size=info["memory_size"],
                                   phase=info["phase"]))
            macros.append(info["macro"])
            done = terminated or truncated
        traj.reward, traj.terminated, traj.truncated = float(reward), terminated, truncated
        traj.result = {**{key: info[key] for key in RESULT_KEYS}, "macros": macros, "situations": situations}
        trajectories.append(traj)
    return trajectories


def situation(features: np.ndarray, max_reads: int) -> str:
    """A short label of what a controller sees, coarse enough to tally which macro it picks where.

    Reading: whether ``store_matches`` would find sentences in the chunk, what the query holds (unset, the
    question without the first hop, or the first hop), whether the shown memories support a first hop, and
    the consecutive reads so far. Answering: the reads of this question and how many hops the shown
    memories support.
    """
    f = {name: float(features[i]) for name, i in FEATURE_INDEX.items()}
    reads = int(round(f["reads"] * max_reads))
    if f["phase"] >= 0.5:
        hops = "both hops" if f["has_second_hop"] else "first hop only" if f["has_first_hop"] else "no hop"
        return f"answering: reads {reads}, {hops} shown"
    query = ("names the first hop" if f["query_has_first_hop"] else "without the first hop"
             if f["query_matches_question"] else "unset")
    return (f"reading: {'matches' if f['chunk_matches'] > 0 else 'no matches'}, query {query}, "
            f"{'first hop shown' if f['has_first_hop'] else 'no first hop shown'}, reads {reads}")


def behaviour(trajectories: Sequence[Trajectory]) -> list[dict[str, Any]]:
    """How often each macro was chosen in each :func:`situation`: rows of situation, macro, count, share (of
    that situation's turns), sorted by situation."""
    pairs = Counter((s, m) for t in trajectories for s, m in zip(t.result["situations"], t.result["macros"],
                                                                  strict=True))
    totals = Counter(s for t in trajectories for s in t.result["situations"])
    return [{"situation": s, "macro": m, "count": n, "share": n / totals[s]} for (s, m), n in sorted(pairs.items())]


def play_config(env_config: dict[str, Any], policy: ControllerPolicy, episodes: int, seed: int = 0,
                first_index: int = 0) -> list[Trajectory]:
    """:func:`play` on episodes ``first_index .. first_index + episodes - 1`` of a fresh env."""
    env = make_controller_env(env_config)
    indices = range(first_index, first_index + min(episodes, len(env.base.source) - first_index))
    return play(env, policy, [seed + i for i in indices], list(indices), env_config.get("env_id", ""))


def random_policy(seed: int = 0) -> ControllerPolicy:
    """A uniformly random applicable macro each turn (the floor a learned controller must clear)."""
    rng = np.random.default_rng(seed)
    return lambda features, obs: int(rng.choice(np.flatnonzero(action_mask(features))))


def macro_rates(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """Share of all turns spent on each macro, as ``{"macro/<name>": share}``."""
    chosen = [m for t in trajectories for m in t.result["macros"]]
    return {f"macro/{m}": chosen.count(m) / max(1, len(chosen)) for m in MACROS}


def eval_env_config(train_config: dict[str, Any]) -> dict[str, Any]:
    """The held-out version of a training env config.

    Synthetic ids get the next ``seed_salt`` (a disjoint family of worlds). Real benchmarks get their
    ``dev`` split (other questions than ``split="train"``, on which a controller trains); a config
    already on ``dev`` stays there, so a controller trained on ``dev`` would be scored on its own
    training questions (``rllib_controller.py`` refuses that).
    """
    config = {**train_config, "env_kwargs": dict(train_config.get("env_kwargs") or {})}
    kwargs = config["env_kwargs"]
    if atommem_env.needs_data(config.get("env_id", "AtomMem-Synthetic-v0")):
        if kwargs.get("data_files") and canonical_split(kwargs.get("split", "dev")) != "dev":
            raise ConfigError("data_files names the training files, so the held-out dev split cannot be found "
                              "from it: pass data_dir instead.")
        kwargs["split"] = "dev"
    else:
        kwargs["seed_salt"] = int(kwargs.get("seed_salt", 0)) + 1
    return config


def greedy_policy(module: Any) -> ControllerPolicy:
    """The most likely macro under an RLlib RLModule (the argmax of its action logits)."""
    import torch

    def choose(features: np.ndarray, obs: dict[str, Any]) -> int:
        with torch.no_grad():
            out = module.forward_inference({"obs": torch.as_tensor(features[None, :])})
        return int(torch.argmax(out["action_dist_inputs"][0]))

    return choose


def module_policy(checkpoint: str | Path) -> ControllerPolicy:
    """Greedy policy of a trained controller, loaded from disk (no Ray session needed).

    Args:
        checkpoint: a folder written by ``algo.save_to_path`` (such as ``<out-dir>/final``), or its
            ``learner_group/learner/rl_module/default_policy`` folder.

    Raises:
        FileNotFoundError: no RLModule checkpoint under that path.
    """
    path = Path(checkpoint)
    module_dir = path / "learner_group" / "learner" / "rl_module" / "default_policy"
    if not module_dir.is_dir():
        module_dir = path
    if not (module_dir / "module_state.pkl").exists():
        raise FileNotFoundError(
            f"No RLlib module checkpoint at {path} (looked for module_state.pkl there and under "
            "learner_group/learner/rl_module/default_policy); pass a folder written by rllib_controller.py."
        )
    from ray.rllib.core.rl_module.rl_module import RLModule

    return greedy_policy(RLModule.from_checkpoint(str(module_dir.resolve())))
