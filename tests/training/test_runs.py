"""The GRPO loop and its run protocol, with a recording fake run: no model, no Ray."""

from __future__ import annotations

import inspect
import json

import gymnasium as gym
import pytest

from agents import NoMemoryPolicy
from agents.training.errors import RunError, RunStopped
from agents.training.grpo_config import GRPOArgs
from agents.training.grpo_run import GRPORun
from agents.training.metrics import OP_RATE_KEYS
from agents.training.ray.run import DistributedRun
from agents.training.rollout import rollout
from agents.training.runs import (
    EpisodePlan,
    Run,
    describe_outputs,
    eval_metrics,
    grpo_step,
    rollout_metrics,
    sample_groups,
    train,
)


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
        folder = run_dir / "checkpoints" / f"step-{step:08d}"  # what latest_checkpoint recognizes
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifest.json").write_text("{}")

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


class StopsAt(Recording):
    """A run whose step ``stop_at`` fails as an actor's death would (``fault``)."""

    stop_at = 0
    fault: BaseException = RunStopped("A learner rank died.")

    def step(self, step):
        if step == self.stop_at:
            raise self.fault
        return super().step(step)


def test_a_folder_left_before_the_first_checkpoint_is_reused_and_cannot_be_resumed(tmp_path):
    StopsAt.stop_at, StopsAt.fault = 0, RunStopped("A learner rank died.")
    with pytest.raises(RunStopped) as stopped:
        train(args(tmp_path), StopsAt)
    assert (tmp_path / "config.json").exists() and not (tmp_path / "checkpoints").exists()
    assert "No checkpoint was written" in str(stopped.value) and "intact" not in str(stopped.value)
    with pytest.raises(RunError, match="no checkpoint to continue from.*without --resume"):
        train(args(tmp_path, resume=True), Recording)
    Recording.calls = []
    train(args(tmp_path), Recording)  # the same command again: the folder is reused
    assert Recording.calls[-2:] == [("export", "final"), ("close",)]


def test_a_stopped_run_names_its_checkpoint_for_resume_only_when_one_exists(tmp_path, caplog):
    StopsAt.stop_at, StopsAt.fault = 3, RunStopped("A learner rank died.")  # after the checkpoint of step 3
    with pytest.raises(RunStopped, match=r"A learner rank died\.\nThe last checkpoint \(.*step-00000003\) is intact: "
                                         r"continue with the same command and --resume"):
        train(args(tmp_path), StopsAt)
    StopsAt.stop_at, StopsAt.fault = 0, KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        train(args(tmp_path / "fresh"), StopsAt)
    assert "Interrupted. No checkpoint was written" in caplog.text


def test_the_outputs_are_listed_at_the_end(tmp_path):
    train(args(tmp_path), Recording)
    text = describe_outputs(tmp_path)
    assert f"{tmp_path / 'final'}" in text and "metrics.csv" in text and "step-00000004" in text
    assert "tensorboard" not in text  # --logger none wrote none


@pytest.mark.parametrize("run_class", [GRPORun, DistributedRun])
def test_both_runs_implement_the_protocol_with_its_signatures(run_class):
    for name, method in inspect.getmembers(Run, inspect.isfunction):
        if name.startswith("_"):
            continue
        theirs = inspect.signature(getattr(run_class, name))
        assert list(theirs.parameters) == list(inspect.signature(method).parameters), (run_class.__name__, name)


def episodes(rewards, group_size=2, first_seed=0):
    """Real trajectories of a scripted policy, with the given rewards and two response tokens a turn;
    each ``group_size`` consecutive ones share a seed, i.e. form a group."""
    seeds = [first_seed + i // group_size for i in range(len(rewards))]
    played = rollout(lambda: gym.make("AtomMem-Synthetic-Tiny-v0"), NoMemoryPolicy(), seeds, indices=[0] * len(seeds))
    for trajectory, reward in zip(played, rewards, strict=True):
        trajectory.reward = reward
        for turn in trajectory.turns:
            turn.response_ids = [1, 2]
    return played


def test_a_step_times_collection_and_update_and_summarizes_the_groups():
    learned, rounds = [], []
    step_args = GRPOArgs(prompts_per_step=2, group_size=2)
    metrics = grpo_step(lambda r: rounds.append(r) or episodes([1.0, 0.0, 0.5, 0.5]),
                        lambda t: learned.append(len(t)) or {"loss": 0.1}, step_args)
    assert rounds == [0] and learned == [4]  # without dynamic sampling: one round, every group trained on
    assert metrics["train/loss"] == 0.1 and metrics["rollout/flat_groups"] == 0.5
    assert metrics["rollout/groups_sampled"] == 2 and metrics["rollout/trained_groups"] == 2
    assert metrics["rollout/sample_rounds"] == 1
    assert metrics["rollout/reward"] == 0.5 and metrics["rollout/response_tokens"] == 2.0
    assert metrics["time/rollout_s"] >= 0 and metrics["time/update_s"] >= 0
    assert rollout_metrics(episodes([0.0, 0.0]))["rollout/flat_groups"] == 1.0
    assert eval_metrics(episodes([1.0]))["eval/reward"] == 1.0


def test_the_curves_of_docs_training_are_logged_every_step():
    """docs/TRAINING.md plots these columns of a GRPO run's metrics.csv (the paper's training dynamics)."""
    metrics = rollout_metrics(episodes([1.0, 0.0]))
    plotted = ["reward", "flat_groups", "invalid_per_turn"] + [f"{op}_per_turn" for op in OP_RATE_KEYS]
    assert {f"rollout/{key}" for key in plotted} <= set(metrics)


def test_evaluation_metrics_carry_intervals_clustered_by_episode():
    played = episodes([1.0, 0.0, 0.0, 1.0], group_size=1)
    for trajectory, correct in zip(played, [1, 0, 0, 1], strict=True):
        trajectory.result["em"] = [correct]
    metrics = eval_metrics(played)
    assert metrics["eval/em"] == 0.5
    assert 0.0 <= metrics["eval/em_lo"] < 0.5 < metrics["eval/em_hi"] <= 1.0
    assert {"eval/episode_em_lo", "eval/f1_hi"} <= set(metrics)


ROUNDS = {0: [1.0, 1.0, 0.0, 1.0, 0.0, 0.0], 1: [0.0, 0.0, 1.0, 0.0, 0.5, 0.0], 2: [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]}


def collect_rounds(table, calls):
    """Three groups of 2 a round, rewards from ``table``; distinct seeds per round (as the plan gives)."""
    return lambda r: calls.append(r) or episodes(table[r], first_seed=10 * r)


def test_dynamic_sampling_samples_rounds_until_enough_groups_have_mixed_rewards():
    calls = []
    groups = sample_groups(collect_rounds(ROUNDS, calls), 3, dynamic=True, max_rounds=5)
    # Round 0 has 1 mixed group of 3, round 1 has 2, which makes 3: no round 2.
    assert calls == [0, 1] and groups.rounds == 2 and len(groups.sampled) == 12
    assert [t.reward for t in groups.trained] == [0.0, 1.0, 1.0, 0.0, 0.5, 0.0]
    assert [t.seed for t in groups.trained] == [1, 1, 11, 11, 12, 12]  # the mixed groups, in sampling order
    calls.clear()
    enough = sample_groups(collect_rounds(ROUNDS, calls), 2, dynamic=True, max_rounds=5)
    assert calls == [0, 1] and [t.seed for t in enough.trained] == [1, 1, 11, 11]  # the first 2 mixed: DAPO's cut


def test_dynamic_sampling_stops_at_the_cap_and_trains_on_the_mixed_groups_it_has(caplog):
    calls = []
    flat = {r: [1.0] * 6 for r in range(3)}
    flat[1] = [1.0, 0.0] + [0.0] * 4
    with caplog.at_level("WARNING"):
        groups = sample_groups(collect_rounds(flat, calls), 3, dynamic=True, max_rounds=3)
    assert calls == [0, 1, 2] and groups.rounds == 3 and [t.seed for t in groups.trained] == [10, 10]
    assert "found 1 of 3 groups with mixed rewards in 3 rounds" in caplog.text
    none = sample_groups(collect_rounds({0: [0.0] * 6}, []), 3, dynamic=True, max_rounds=1)
    assert none.trained == [] and len(none.sampled) == 6  # nothing to train on: the update gets no sample


def test_a_dynamically_sampled_step_logs_rounds_groups_sampled_and_the_flat_share():
    learned = []
    step_args = GRPOArgs(prompts_per_step=3, group_size=2, dynamic_sampling=True, max_sample_rounds=4)
    metrics = grpo_step(collect_rounds(ROUNDS, []), lambda t: learned.append(len(t)) or {"loss": 0.0}, step_args)
    assert learned == [6] and metrics["rollout/sample_rounds"] == 2 and metrics["rollout/groups_sampled"] == 6
    assert metrics["rollout/trained_groups"] == 3 and metrics["rollout/flat_groups"] == pytest.approx(3 / 6)
    assert metrics["rollout/episodes"] == 12  # the rollout summary covers every episode sampled


def test_the_plan_lists_every_rollout_of_a_step_group_by_group():
    plan = EpisodePlan(size=10, held_out_count=3, per_step=2, seed=1)
    indices, seeds = plan.groups(1)
    assert plan.rollouts(1, 3) == [(seeds[0], indices[0])] * 3 + [(seeds[1], indices[1])] * 3


@pytest.mark.parametrize("train_size, per_step", [(7, 2), (3, 4)])
def test_later_sample_rounds_draw_training_episodes_with_group_keys_new_to_the_step(train_size, per_step):
    plan = EpisodePlan(size=train_size + 3, held_out_count=3, per_step=per_step, seed=1)
    assert plan.groups(5, 0) == plan.groups(5)  # round 0 is the step's share of the cycle, as without rounds
    keys = [pair for r in range(6) for pair in zip(*plan.groups(5, r), strict=True)]
    assert len(set(keys)) == len(keys) == 6 * per_step  # no group key twice in a step
    assert all(0 <= index < train_size for index, _ in keys)  # never a held-out episode
    assert plan.groups(5, 3) == EpisodePlan(size=train_size + 3, held_out_count=3, per_step=per_step,
                                            seed=1).groups(5, 3)  # a resumed step draws the same
    assert plan.groups(5, 1) != plan.groups(6, 1)
    if per_step <= train_size:
        assert all(len(set(plan.groups(5, r)[0])) == per_step for r in range(1, 4))  # distinct within a round
