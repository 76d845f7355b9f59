"""The GRPO training loop and what every GRPO run shares, whether it runs in one process
(:class:`~agents.training.grpo_run.GRPORun`) or on a Ray cluster
(:class:`~agents.training.ray.run.DistributedRun`).

A run implements the small :class:`Run` protocol; :func:`train` drives any of them the same way: restore
(with ``--resume``), then per step ``step``, every ``eval_every`` steps ``evaluate``, every
``save_every`` steps ``save``, and at the end ``export`` and ``close``. The step logic both runs share
is a set of plain functions here: which episodes a step plays (:class:`EpisodePlan`), which of its groups
it trains on (:func:`sample_groups`, with DAPO's dynamic sampling), how a step is timed and summarized
(:func:`grpo_step`), and the ``rollout/*`` and ``eval/*`` metrics.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Protocol

from agents.training.envs import EnvSpec, training_data
from agents.training.errors import RunError, RunStopped
from agents.training.grpo_config import GRPOArgs
from agents.training.metrics import confidence_intervals, summarize
from agents.training.progress import ProgressFactory, no_progress
from agents.training.rollout import Trajectory, episode_groups, is_flat
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
    try:
        run = make_run(args)
        try:
            return _loop(args, run, run_dir, progress)
        finally:
            run.close()
    except RunStopped as error:
        error.args = (f"{error}\n{how_to_go_on(run_dir)}",)
        raise
    except KeyboardInterrupt:
        log.warning("Interrupted. %s", how_to_go_on(run_dir))
        raise


def how_to_go_on(run_dir: Path) -> str:
    """What to do after a run in ``run_dir`` stopped: resume from its checkpoint, or start it again."""
    checkpoint = newest_checkpoint_or_none(run_dir)
    if checkpoint is None:
        return (f"No checkpoint was written in {run_dir}: run the same command again (without --resume); "
                "the folder is reused.")
    return f"The last checkpoint ({checkpoint}) is intact: continue with the same command and --resume."


def describe_outputs(run_dir: Path) -> str:
    """Where a finished run's outputs are (printed at its end)."""
    from agents.training.tracking import CONFIG_JSON, METRICS_CSV, TENSORBOARD_DIR

    lines = [f"The run's outputs are in {run_dir}:",
             f"  {run_dir / 'final'}  the trained model (loads with from_pretrained; --model for evaluate.py)",
             f"  {run_dir / METRICS_CSV}  every logged metric, one row per step",
             f"  {run_dir / CONFIG_JSON}  the run's settings"]
    checkpoint = newest_checkpoint_or_none(run_dir)
    if checkpoint is not None:
        lines.append(f"  {checkpoint}  the last checkpoint (--resume with a larger --steps continues from it)")
    if (run_dir / TENSORBOARD_DIR).is_dir():
        lines.append(f"  {run_dir / TENSORBOARD_DIR}  curves: tensorboard --logdir {run_dir / TENSORBOARD_DIR}")
    return "\n".join(lines)


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
    """Refuse to mix runs: a fresh run needs a folder without a checkpoint (one left by a run that stopped
    before its first is reused); a resumed one, the same settings and a checkpoint.

    Raises:
        RunError: the folder holds a checkpoint (without ``--resume``), or holds no run, other settings or
            no checkpoint (with it).
    """
    saved = run_dir / "config.json"
    checkpoint = newest_checkpoint_or_none(run_dir)
    if not args.resume:
        if checkpoint is not None:
            raise RunError(f"{run_dir} already holds a run (its last checkpoint: {checkpoint}); continue it with "
                           "--resume or pick another --out-dir.")
        return  # a folder left by a run that stopped before its first checkpoint is reused
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
    if checkpoint is None:
        raise RunError(f"--resume: {run_dir} has no checkpoint to continue from (the run stopped before its "
                       "first); run the same command without --resume.")


def newest_checkpoint_or_none(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of ``run_dir``, or ``None`` (torch is imported only when the
    folder has checkpoints to look at)."""
    if not (run_dir / "checkpoints").is_dir():
        return None
    from agents.training.checkpoint import latest_checkpoint  # imports torch

    return latest_checkpoint(run_dir)


def newest_checkpoint(run_dir: Path) -> Path:
    """The checkpoint ``--resume`` continues from.

    Raises:
        RunError: ``run_dir`` has none.
    """
    path = newest_checkpoint_or_none(run_dir)
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

    def groups(self, step: int, sample_round: int = 0) -> tuple[list[int], list[int]]:
        """(episode index, seed) of each group of ``step``'s round ``sample_round``.

        Round 0 is the step's share of the cycle. Later rounds (dynamic sampling) draw episodes at
        random from the training ones, by an RNG of (run seed, step): a resumed step draws the same,
        no step's round 0 is displaced, and no (index, seed) pair, the group key, repeats within a step.
        """
        first = step * self.per_step
        indices = [(first + j) % self.train_size for j in range(self.per_step)]
        seeds = [self.seed * 1_000_003 + first + j for j in range(self.per_step)]
        if sample_round == 0:
            return indices, seeds
        rng = random.Random(self.seed * 1_000_003 + step)
        used = set(zip(indices, seeds, strict=True))
        for _ in range(sample_round):
            indices = _draw(rng, self.train_size, self.per_step)
            seeds = [rng.randrange(2**31) for _ in indices]
            while len(used | set(zip(indices, seeds, strict=True))) < len(used) + self.per_step:
                seeds = [rng.randrange(2**31) for _ in indices]  # a repeated group key: as likely as 1 in 1e9
            used.update(zip(indices, seeds, strict=True))
        return indices, seeds

    def rollouts(self, step: int, group_size: int, sample_round: int = 0) -> list[tuple[int, int]]:
        """(seed, index) of every rollout of ``step``'s round ``sample_round``: each group's episode
        ``group_size`` times, group by group."""
        indices, seeds = self.groups(step, sample_round)
        return [(seed, index) for seed, index in zip(seeds, indices, strict=True) for _ in range(group_size)]

    def held_out(self) -> list[int]:
        """Indices of the held-out episodes."""
        return list(range(self.train_size, self.size))

    def eval_seed(self, index: int) -> int:
        """The reset seed of held-out episode ``index``."""
        return self.seed + index


def _draw(rng: random.Random, population: int, count: int) -> list[int]:
    """``count`` indices below ``population``, distinct while there are enough."""
    if count <= population:
        return rng.sample(range(population), count)
    return [rng.randrange(population) for _ in range(count)]


@dataclass(frozen=True)
class SampledGroups:
    """A step's rollouts: every trajectory sampled, the ones trained on, and the rounds it took."""

    sampled: list[Trajectory]
    trained: list[Trajectory]
    rounds: int


def sample_groups(collect: Callable[[int], list[Trajectory]], wanted: int, *, dynamic: bool,
                  max_rounds: int) -> SampledGroups:
    """The step's groups: ``collect(0)``, trained on whole; or, with ``dynamic``, DAPO's dynamic sampling.

    Dynamic sampling (Yu et al. 2025, arXiv:2503.14476, §3.2) collects rounds ``collect(0)``,
    ``collect(1)``... until ``wanted`` groups have mixed rewards, and trains on the first ``wanted`` of
    those; flat groups (every rollout scored alike) are dropped whole, with their KL term too. At
    ``max_rounds`` it stops and trains on the mixed groups it has (fewer than ``wanted``, perhaps none:
    then the update has a zero gradient), with a warning; ``rollout/trained_groups`` shows it.
    """
    if not dynamic:
        first = collect(0)
        return SampledGroups(first, first, 1)
    sampled: list[Trajectory] = []
    mixed: list[list[Trajectory]] = []
    rounds = 0
    while len(mixed) < wanted and rounds < max_rounds:
        batch = collect(rounds)
        rounds += 1
        sampled += batch
        mixed += [group for group in episode_groups(batch) if not is_flat(group)]
    if len(mixed) < wanted:
        log.warning("Dynamic sampling found %d of %d groups with mixed rewards in %d rounds (--max-sample-rounds); "
                    "the step trains on those.", len(mixed), wanted, rounds)
    return SampledGroups(sampled, [t for group in mixed[:wanted] for t in group], rounds)


def grpo_step(collect: Callable[[int], list[Trajectory]], learn: Callable[[list[Trajectory]], dict[str, float]],
              args: GRPOArgs) -> dict[str, float]:
    """One step: collect the episodes (``collect(sample_round)``; see :func:`sample_groups`), learn from
    them; ``train/*``, ``rollout/*`` and ``time/*`` metrics."""
    started = time.perf_counter()
    groups = sample_groups(collect, args.prompts_per_step, dynamic=args.dynamic_sampling,
                           max_rounds=args.max_sample_rounds)
    rollout_s = time.perf_counter() - started
    metrics = {f"train/{k}": v for k, v in learn(groups.trained).items()}
    metrics.update(rollout_metrics(groups.sampled))
    metrics.update({"rollout/sample_rounds": float(groups.rounds),
                    "rollout/trained_groups": float(len(episode_groups(groups.trained)))})
    metrics.update({"time/rollout_s": rollout_s, "time/update_s": time.perf_counter() - started - rollout_s})
    return metrics


def rollout_metrics(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """``rollout/*``: the usual summary (EM, reward, per-turn op rates...) plus GRPO-specific figures, over
    every trajectory sampled (with dynamic sampling, the flat groups left out of training too)."""
    metrics = {f"rollout/{k}": float(v) for k, v in summarize(trajectories).items()}
    groups = episode_groups(trajectories)
    metrics["rollout/groups_sampled"] = float(len(groups))
    metrics["rollout/flat_groups"] = sum(map(is_flat, groups)) / len(groups)  # their share: no learning signal
    lengths = [len(turn.response_ids or ()) for t in trajectories for turn in t.turns]
    metrics["rollout/response_tokens"] = sum(lengths) / max(1, len(lengths))
    return metrics


def eval_metrics(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """``eval/*``: the summary of the held-out episodes, with 95 % intervals clustered by episode
    (``eval/em_lo``, ``eval/em_hi``... of :func:`~agents.training.metrics.confidence_intervals`)."""
    summary = {**summarize(trajectories), **confidence_intervals(trajectories)}
    return {f"eval/{k}": float(v) for k, v in summary.items()}
