"""The GRPO loop and its run protocol, with a recording fake run: no model, no Ray."""

from __future__ import annotations

import inspect
import json

import gymnasium as gym
import pytest

from agents import NoMemoryPolicy
from agents.training.errors import RunError
from agents.training.grpo_config import GRPOArgs
from agents.training.grpo_run import GRPORun
from agents.training.ray.run import DistributedRun
from agents.training.rollout import rollout
from agents.training.runs import EpisodePlan, Run, eval_metrics, grpo_step, rollout_metrics, train


class Recording:
    """A run that records the loop's calls and saves like a real one (the loop checks the folder)."""

    calls: list[tuple] = []

    def __init__(self, args):
        self.args = args

    def restore(self, run_dir):
        Recording.calls.append(("restore",))
        return 2

    def step(self, step):
        Recording.calls.append(("step", step))
        return {"rollout/reward": 0.5, "train/loss": float(step)}

    def evaluate(self):
        Recording.calls.append(("evaluate",))
        return {"eval/em": 0.25}

    def save(self, run_dir, step):
        Recording.calls.append(("save", step))
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)

    def export(self, folder):
        Recording.calls.append(("export", folder.name))

    def close(self):
        Recording.calls.append(("close",))


def args(tmp_path, **overrides):
    values = {"steps": 4, "eval_every": 2, "save_every": 3, "logger": "none", "out_dir": str(tmp_path)}
    return GRPOArgs(**{**values, **overrides})


def test_the_loop_steps_evaluates_saves_exports_and_closes_on_schedule(tmp_path):
    Recording.calls = []
    last = train(args(tmp_path), Recording)
    assert Recording.calls == [
        ("step", 0), ("step", 1), ("evaluate",), ("step", 2), ("save", 3), ("step", 3), ("evaluate",), ("save", 4),
        ("export", "final"), ("close",),
    ]
    assert last == {"rollout/reward": 0.5, "train/loss": 3.0, "eval/em": 0.25}
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 4


def test_a_resumed_loop_starts_where_the_checkpoint_left_off(tmp_path):
    train(args(tmp_path), Recording)
    Recording.calls = []
    train(args(tmp_path, steps=3, resume=True), Recording)
    assert Recording.calls[:2] == [("restore",), ("step", 2)]


def test_the_run_is_closed_when_a_step_fails(tmp_path):
    class Failing(Recording):
        def step(self, step):
            raise RuntimeError("boom")

    Recording.calls = []
    with pytest.raises(RuntimeError, match="boom"):
        train(args(tmp_path), Failing)
    assert Recording.calls == [("close",)]


def test_runs_are_refused_in_a_folder_of_another_run(tmp_path):
    train(args(tmp_path), Recording)
    with pytest.raises(RunError, match="already holds a run"):
        train(args(tmp_path), Recording)
    with pytest.raises(RunError, match="holds no run"):
        train(args(tmp_path / "empty", resume=True), Recording)


@pytest.mark.parametrize("run_class", [GRPORun, DistributedRun])
def test_both_runs_implement_the_protocol_with_its_signatures(run_class):
    for name, method in inspect.getmembers(Run, inspect.isfunction):
        if name.startswith("_"):
            continue
        theirs = inspect.signature(getattr(run_class, name))
        assert list(theirs.parameters) == list(inspect.signature(method).parameters), (run_class.__name__, name)


def episodes(rewards):
    """Real trajectories of a scripted policy, with the given rewards and two response tokens a turn."""
    played = rollout(lambda: gym.make("AtomMem-Synthetic-Tiny-v0"), NoMemoryPolicy(), list(range(len(rewards))))
    for trajectory, reward in zip(played, rewards, strict=True):
        trajectory.reward = reward
        for turn in trajectory.turns:
            turn.response_ids = [1, 2]
    return played


def test_a_step_times_collection_and_update_and_summarizes_the_groups():
    learned = []
    metrics = grpo_step(lambda: episodes([1.0, 0.0, 0.5, 0.5]), lambda t: learned.append(len(t)) or {"loss": 0.1},
                        group_size=2)
    assert learned == [4] and metrics["train/loss"] == 0.1 and metrics["rollout/flat_groups"] == 0.5
    assert metrics["rollout/reward"] == 0.5 and metrics["rollout/response_tokens"] == 2.0
    assert metrics["time/rollout_s"] >= 0 and metrics["time/update_s"] >= 0
    assert rollout_metrics(episodes([0.0, 0.0]), 2)["rollout/flat_groups"] == 1.0
    assert eval_metrics(episodes([1.0]))["eval/reward"] == 1.0


def test_the_plan_lists_every_rollout_of_a_step_group_by_group():
    plan = EpisodePlan(size=10, held_out_count=3, per_step=2, seed=1)
    indices, seeds = plan.groups(1)
    assert plan.rollouts(1, 3) == [(seeds[0], indices[0])] * 3 + [(seeds[1], indices[1])] * 3
