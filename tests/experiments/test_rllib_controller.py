"""RLlib on ControllerEnv: RLlib's own env runner samples it, and a short PPO run beats random (slow)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("ray.rllib", reason="the controller tests need RLlib (pip install -e '.[rllib]')")

from agents.controller import training as T  # noqa: E402
from agents.controller.env import FEATURES  # noqa: E402
from agents.controller.evaluation import module_policy, play_config  # noqa: E402
from agents.controller.macros import MACROS  # noqa: E402
from agents.training.metrics import summarize  # noqa: E402
from experiments import rllib_controller as R  # noqa: E402

pytestmark = pytest.mark.slow


def test_rllib_env_runner_builds_and_samples_the_env(ray_session, tmp_path):
    """RLlib 2.60 has no single-agent env checker of its own (it relies on gymnasium's); its
    SingleAgentEnvRunner is what builds and steps the env in training, so it is the check."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    args = T.ControllerArgs(out_dir=str(tmp_path), batch_size=64, minibatch_size=32)
    T.register_env()
    runner = SingleAgentEnvRunner(config=T.ppo_config(args))
    episodes = runner.sample(num_timesteps=64, random_actions=True)
    assert sum(len(e) for e in episodes) >= 64
    finished = [e for e in episodes if e.is_done]
    assert finished, "64 random steps finish at least one episode of about 14 turns"
    space = runner.env.single_observation_space
    for episode in episodes:
        observations = episode.get_observations()
        assert observations.shape[1:] == (len(FEATURES),)
        assert all(space.contains(o) for o in observations)
        assert set(int(a) for a in episode.get_actions()) <= set(range(len(MACROS)))
    assert all(e.get_return() in (0.0, 1.0) for e in finished)  # one question: reward is its EM
    runner.stop()


def test_ppo_trains_and_improves_over_random(ray_session, tmp_path):
    out = tmp_path / "run"
    result = R.main(["--iterations", "5", "--batch-size", "2000", "--eval-every", "5", "--eval-episodes", "60",
                     "--checkpoint-every", "2", "--logger", "none", "--seed", "0", "--out-dir", str(out)])
    assert (out / "final").is_dir() and len(list((out / "checkpoints").glob("iter-*"))) == 2
    with open(out / "metrics.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 6))
    assert (out / "curve.png").stat().st_size > 0
    assert json.loads((out / "baselines.json").read_text()) == result["baselines"]
    returns = [float(r["train/episode_return_mean"]) for r in rows]
    assert np.mean(returns[-2:]) > returns[0], returns  # the sampling policy got better
    learned = result["last"]["eval/em"]
    assert learned > result["baselines"]["random"], (learned, result["baselines"])
    # the saved module is the one evaluated: reloading it from disk gives the same held-out EM
    config = {"env_id": "AtomMem-Synthetic-v0", "env_kwargs": {"seed_salt": 1}}
    assert summarize(play_config(config, module_policy(out / "final"), 60))["em"] == learned
