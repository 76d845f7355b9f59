"""The GRPO training loop and what every GRPO run shares, whether it runs in one process
(:class:`~agents.training.grpo_run.GRPORun`) or on a Ray cluster
(:class:`~agents.training.ray.run.DistributedRun`).

A run implements the small :class:`Run` protocol; :func:`train` drives any of them the same way: restore
(with ``--resume``), then per step ``step``, every ``eval_every`` steps ``evaluate``, every
``save_every`` steps ``save``, and at the end ``export`` and ``close``. The step logic both runs share
is a set of plain functions here: which episodes a step plays (:class:`EpisodePlan`), how a step is
timed and summarized (:func:`grpo_step`), and the ``rollout/*`` and ``eval/*`` metrics.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Protocol

from agents.training.envs import EnvSpec, training_data
from agents.training.errors import RunError
from agents.training.grpo_config import GRPOArgs
from agents.training.metrics import summarize
from agents.training.progress import ProgressFactory, no_progress
from agents.training.rollout import Trajectory
from atommem_env.errors import ConfigError

log = logging.getLogger(__name__)


class Run(Protocol):
    """A GRPO run as :func:`train` drives it."""

    def step(self, step: int) -> dict[str, float]:
        """Roll out step ``step``'s groups, update once, and return the step's metrics."""

    def evaluate(self) -> dict[str, float]:
        """Greedy play of the held-out episodes: ``eval/*`` metrics (empty with none held out)."""

    def save(self, run_dir: Path, step: int) -> None:
        """Checkpoint everything an exact ``--resume`` needs after ``step`` steps."""

    def restore(self, run_dir: Path) -> int:
        """Load the newest checkpoint of ``run_dir``; returns the step to continue from."""

    def export(self, folder: Path) -> None:
        """Write the trained model as a ``from_pretrained`` folder."""

    def close(self) -> None:
        """Release what the run holds (actors, placement groups, a Ray session it started)."""


def train(args: GRPOArgs, make_run: Callable[[GRPOArgs], Run],
          progress: ProgressFactory = no_progress) -> dict[str, float]:
    """Run (or resume) the GRPO run ``make_run(args)`` builds; returns the last step's metrics.

    Raises:
        RunError: ``--out-dir`` holds another run, or ``--resume`` finds no run or other settings.
    """
    run_dir = Path(args.out_dir)
    check_run_dir(args, run_dir)
    run = make_run(args)
    try:
        return _loop(args, run, run_dir, progress)
    finally:
        run.close()


def _loop(args: GRPOArgs, run: Run, run_dir: Path, progress: ProgressFactory) -> dict[str, float]:
    from agents.training.tracking import Tracker

    start = run.restore(run_dir) if args.resume else 0
    metrics: dict[str, float] = {}
    # The config also records the data trained on ("split", resolved from the env; see training_data).
    config = {**asdict(args), **training_data(args.env_id, json.loads(args.env_kwargs))}
    with Tracker(run_dir, backend=args.logger, config=config, resume=args.resume) as tracker:
        if args.resume:
            tracker.truncate_after(start)
        bar = progress("grpo", args.steps, start)
        for step in range(start, args.steps):
            metrics = run.step(step)
            if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
                metrics.update(run.evaluate())
            tracker.log(metrics, step + 1)
            if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
                run.save(run_dir, step + 1)
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['rollout/reward']:.3f}")
        bar.close()
    run.export(run_dir / "final")
    return metrics


def check_run_dir(args: GRPOArgs, run_dir: Path) -> None:
    """Refuse to mix runs: a fresh run needs an empty folder; a resumed one, the same settings.

    Raises:
        RunError: the folder holds a run (without ``--resume``), or holds none / other settings (with it).
    """
    saved = run_dir / "config.json"
    if not args.resume:
        if (run_dir / "checkpoints").exists() or saved.exists():
            raise RunError(f"{run_dir} already holds a run; continue it with --resume or pick another --out-dir.")
        return
    if not saved.exists():
        raise RunError(f"--resume: {run_dir} holds no run (no config.json); start without --resume.")
    before = json.loads(saved.read_text())
    # A setting the saved config lacks was added after the run started, which then ran with what is
    # now that setting's default.
    defaults = {f.name: f.default for f in fields(args) if f.default is not MISSING}
    changed = {k: (before.get(k, defaults.get(k)), v) for k, v in asdict(args).items()
               if k not in args.resumable and before.get(k, defaults.get(k)) != v}
    if changed:
        details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items()))
        raise RunError(f"--resume with different settings ({details}); resume with the run's own settings.")


def newest_checkpoint(run_dir: Path) -> Path:
    """The checkpoint ``--resume`` continues from.

    Raises:
        RunError: ``run_dir`` has none.
    """
    from agents.training.checkpoint import latest_checkpoint  # imports torch

    path = latest_checkpoint(run_dir)
    if path is None:
        raise RunError(f"--resume: {run_dir} has no checkpoint to continue from; start without --resume.")
    return path


class EpisodePlan:
    """Which episodes each step trains on, and which are held out for evaluation.

    The last ``held_out_count`` episodes of the source are never trained on; training cycles through
    the others in order, ``per_step`` per step. Seeds are fixed by (run seed, step, slot), so a resumed
    run trains on exactly the episodes the uninterrupted run would have.

    Raises:
        ConfigError: every episode would be held out.
    """

    def __init__(self, size: int, held_out_count: int, per_step: int, seed: int) -> None:
        if size - held_out_count < 1:
            raise ConfigError(
                f"The source has {size} episodes and --eval-episodes {held_out_count} holds them all out; "
                "lower --eval-episodes."
            )
        self.train_size, self.size, self.per_step, self.seed = size - held_out_count, size, per_step, seed

    @classmethod
    def for_run(cls, args: GRPOArgs, env: EnvSpec) -> EpisodePlan:
        """The plan of a GRPO run on ``env``: ``--eval-episodes`` held out, ``--prompts-per-step`` groups a step."""
        return cls(env.episode_count(), args.eval_episodes, args.prompts_per_step, args.seed)

    def groups(self, step: int) -> tuple[list[int], list[int]]:
        """(episode index, seed) of each group of ``step``."""
        first = step * self.per_step
        indices = [(first + j) % self.train_size for j in range(self.per_step)]
        seeds = [self.seed * 1_000_003 + first + j for j in range(self.per_step)]
        return indices, seeds

    def rollouts(self, step: int, group_size: int) -> list[tuple[int, int]]:
        """(seed, index) of every rollout of ``step``: each group's episode ``group_size`` times, group by group."""
        indices, seeds = self.groups(step)
        return [(seed, index) for seed, index in zip(seeds, indices, strict=True) for _ in range(group_size)]

    def held_out(self) -> list[int]:
        """Indices of the held-out episodes."""
        return list(range(self.train_size, self.size))

    def eval_seed(self, index: int) -> int:
        """The reset seed of held-out episode ``index``."""
        return self.seed + index


def grpo_step(collect: Callable[[], list[Trajectory]], learn: Callable[[list[Trajectory]], dict[str, float]],
              group_size: int) -> dict[str, float]:
    """One step: collect the episodes, learn from them; ``train/*``, ``rollout/*`` and ``time/*`` metrics."""
    started = time.perf_counter()
    trajectories = collect()
    rollout_s = time.perf_counter() - started
    metrics = {f"train/{k}": v for k, v in learn(trajectories).items()}
    metrics.update(rollout_metrics(trajectories, group_size))
    metrics.update({"time/rollout_s": rollout_s, "time/update_s": time.perf_counter() - started - rollout_s})
    return metrics


def rollout_metrics(trajectories: Sequence[Trajectory], group_size: int) -> dict[str, float]:
    """``rollout/*``: the usual summary (EM, reward, per-turn op rates...) plus GRPO-specific figures."""
    metrics = {f"rollout/{k}": float(v) for k, v in summarize(trajectories).items()}
    rewards = [t.reward for t in trajectories]
    groups = [rewards[i:i + group_size] for i in range(0, len(rewards), group_size)]
    metrics["rollout/flat_groups"] = sum(max(g) == min(g) for g in groups) / len(groups)  # no learning signal
    lengths = [len(turn.response_ids or ()) for t in trajectories for turn in t.turns]
    metrics["rollout/response_tokens"] = sum(lengths) / max(1, len(lengths))
    return metrics


def eval_metrics(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """``eval/*``: the summary of the held-out episodes."""
    return {f"eval/{k}": float(v) for k, v in summarize(trajectories).items()}
