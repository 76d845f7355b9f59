"""Every policy kind runs whole episodes of the three real benchmarks at 200 documents, under the AtomMem
protocol and the MemAgent protocol (two episodes each; skipped without ../shared/data)."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import atommem_env  # noqa: F401
from agents import BASELINES
from agents.training.metrics import summarize
from agents.training.rollout import rollout
from tests.conftest import shared_data_dir

BENCHMARKS = ("HotpotQA", "2WikiMultihopQA", "MuSiQue")
PROTOCOLS = ("AtomMem-{}-200-v0", "AtomMem-MemAgent-{}-200-v0")


@pytest.fixture(scope="module")
def data_dir():
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data is absent: these runs need the real HotpotQA / 2Wiki / MuSiQue records")
    return str(data)


def run_two(env_id, data_dir, policy):
    make = lambda: gym.make(env_id, data_dir=data_dir)  # noqa: E731
    trajectories = rollout(make, policy, seeds=[0, 1], indices=[0, 1], batch_size=2)
    assert len(trajectories) == 2
    for traj in trajectories:
        assert traj.terminated or traj.truncated
        assert 0.0 <= traj.reward <= 1.0 and len(traj.result["answers"]) == len(traj.result["golds"])
        json.dumps(traj.to_json())
    return summarize(trajectories)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("dataset", BENCHMARKS)
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_play_real_episodes(data_dir, dataset, protocol, name):
    summary = run_two(protocol.format(dataset), data_dir, BASELINES[name]())
    assert summary["episodes"] == 2


@pytest.mark.usefixtures("one_torch_thread")  # see conftest.py
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("dataset", BENCHMARKS)
def test_a_local_model_plays_real_episodes(data_dir, dataset, protocol, tmp_path_factory):
    pytest.importorskip("transformers", reason="local model policies need transformers (pip install -e '.[llm]')")
    from agents.hf_policy import TransformersPolicy
    from tests.support.tiny_lm import build_tiny_lm

    path = build_tiny_lm(tmp_path_factory.mktemp("tiny"), max_positions=512)
    policy = TransformersPolicy(str(path), temperature=0, max_new_tokens=4, device="cpu")
    summary = run_two(protocol.format(dataset), data_dir, policy)
    assert policy.truncated_prompts > 0  # 200-document chunks exceed the tiny model's 512 positions
    assert summary["episodes"] == 2
