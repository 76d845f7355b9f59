"""GRPO on one process: the training loop, the run that owns model, learner and policies, the episode plan."""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym

import atommem_env  # registers the ids
from agents.training.grpo_config import GRPOArgs
from agents.training.metrics import summarize
from agents.training.rollout import Trajectory, rollout

log = logging.getLogger(__name__)

def train(args: GRPOArgs, make_run: Callable[[Any], Any] | None = None) -> dict[str, float]:
    """Run (or resume) a GRPO training run as described by ``args``; returns the last metrics.

    Args:
        make_run: builds the run from ``args`` (default :class:`GRPORun`, one process). Any object
            with ``step``, ``evaluate``, ``save``, ``restore``, ``export`` and ``close`` as on
            :class:`GRPORun` drives the same loop (``experiments/ray_train.py`` passes its Ray run).
    """
    run_dir = Path(args.out_dir)
    _check_run_dir(args, run_dir)
    run = (make_run or GRPORun)(args)
    try:
        return _loop(args, run, run_dir)
    finally:
        run.close()


def _loop(args: GRPOArgs, run: Any, run_dir: Path) -> dict[str, float]:
    from agents.training.tracking import Tracker

    start = run.restore(run_dir) if args.resume else 0
    metrics: dict[str, float] = {}
    with Tracker(run_dir, backend=args.logger, config=asdict(args), resume=args.resume) as tracker:
        if args.resume:
            tracker.truncate_after(start)
        bar = _progress(start, args.steps)
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


class GRPORun:
    """The model, its learner, the sampling and evaluation policies sharing it, and the episode plan."""

    def __init__(self, args: GRPOArgs) -> None:
        from agents.hf_policy import TransformersPolicy
        from agents.models import load_causal_lm
        from agents.training.learner import Learner, LearnerConfig, LoraSettings

        self.args = args
        model, self.tokenizer = load_causal_lm(args.model, args.device, dtype="float32")
        lora = LoraSettings(r=args.lora_r, alpha=2.0 * args.lora_r) if args.lora_r else None
        reference = copy.deepcopy(model) if args.kl_coef > 0 and lora is None else None
        config = LearnerConfig(
            lr=args.lr, warmup_steps=args.warmup_steps, kl_coef=args.kl_coef, clip_low=args.clip_low,
            clip_high=args.clip_high, micro_batch_tokens=args.micro_batch_tokens, temperature=args.temperature,
            pad_token_id=self.tokenizer.pad_token_id, lora=lora,
        )
        self.learner = Learner(model, config, reference=reference)
        shared = {"max_new_tokens": args.max_new_tokens, "batch_size": args.rollout_batch_size,
                  "max_context": args.max_context}
        self.sampler = TransformersPolicy.from_model(
            self.learner.model, self.tokenizer, name=f"grpo:{args.model}", temperature=args.temperature,
            top_p=args.top_p, seed=args.seed, cache_size=0, **shared,
        )
        self.greedy = TransformersPolicy.from_model(
            self.learner.model, self.tokenizer, name=f"grpo:{args.model}", temperature=0.0, cache_size=0, **shared,
        )
        self.make_env = _env_factory(args)
        self.plan = EpisodePlan(len(self.make_env().unwrapped.source), args.eval_episodes, args.prompts_per_step,
                                args.seed)

    def generators(self) -> dict[str, Any]:
        """Random state outside the global RNGs that a checkpoint must carry (the sampler's)."""
        return {"sampler": self.sampler.generator}

    def save(self, run_dir: Path, step: int) -> None:
        """Checkpoint the learner, the tokenizer and every RNG after ``step`` steps."""
        from agents.training.checkpoint import save_checkpoint

        save_checkpoint(run_dir, self.learner, step, tokenizer=self.tokenizer, state={"step": step},
                        generators=self.generators(), keep=self.args.keep_checkpoints)

    def restore(self, run_dir: Path) -> int:
        """Load the newest checkpoint of ``run_dir``; returns the step to continue from."""
        from agents.training.checkpoint import latest_checkpoint, load_checkpoint

        path = latest_checkpoint(run_dir)
        if path is None:
            raise SystemExit(f"--resume: {run_dir} has no checkpoint to continue from; start without --resume.")
        start, _ = load_checkpoint(path, self.learner, generators=self.generators())
        log.info("Resumed %s at step %d", path, start)
        return start

    def export(self, folder: Path) -> None:
        """Write the trained model as a ``from_pretrained`` folder."""
        from agents.training.checkpoint import export_model

        export_model(self.learner, folder, tokenizer=self.tokenizer)

    def close(self) -> None:
        """Nothing to release in one process (the Ray run shuts its actors down here)."""

    def step(self, step: int) -> dict[str, float]:
        """Roll out this step's groups, update once, and return the step's metrics."""
        started = time.perf_counter()
        trajectories = self.collect(step)
        rollout_s = time.perf_counter() - started
        train = self.learn(trajectories)
        metrics = {f"train/{k}": v for k, v in train.items()}
        metrics.update(rollout_metrics(trajectories, self.args.group_size))
        metrics.update({"time/rollout_s": rollout_s, "time/update_s": time.perf_counter() - started - rollout_s})
        return metrics

    def collect(self, step: int) -> list[Trajectory]:
        """The step's episodes: ``group_size`` rollouts of each of its groups, group by group."""
        indices, seeds = self.plan.groups(step)
        group = self.args.group_size
        self.learner.model.eval()
        return rollout(
            self.make_env, self.sampler, [s for s in seeds for _ in range(group)], env_id=self.args.env_id,
            indices=[i for i in indices for _ in range(group)], batch_size=self.args.rollout_batch_size,
        )

    def learn(self, trajectories: list[Trajectory]) -> dict[str, float]:
        """One GRPO update on the step's episodes; returns the learner's metrics."""
        from agents.training.grpo import grpo_samples

        samples = grpo_samples(trajectories, scale_by_std=self.args.scale_by_std)
        self.learner.model.train()
        train = self.learner.grpo_step(samples)
        self.learner.model.eval()
        return train

    def evaluate(self) -> dict[str, float]:
        """Greedy play of the held-out episodes: ``eval/*`` metrics (empty with no held-out episodes)."""
        indices = self.plan.held_out()
        if not indices:
            return {}
        self.learner.model.eval()
        trajectories = rollout(self.make_env, self.greedy, [self.plan.eval_seed(i) for i in indices],
                               env_id=self.args.env_id, indices=indices, batch_size=self.args.rollout_batch_size)
        return {f"eval/{k}": float(v) for k, v in summarize(trajectories).items()}


class EpisodePlan:
    """Which episodes each step trains on, and which are held out for evaluation.

    The last ``held_out_count`` episodes of the source are never trained on; training cycles through
    the others in order, ``per_step`` per step. Seeds are fixed by (run seed, step, slot), so a resumed
    run trains on exactly the episodes the uninterrupted run would have.
    """

    def __init__(self, size: int, held_out_count: int, per_step: int, seed: int) -> None:
        if size - held_out_count < 1:
            raise SystemExit(
                f"The source has {size} episodes and --eval-episodes {held_out_count} holds them all out; "
                "lower --eval-episodes."
            )
        self.train_size, self.size, self.per_step, self.seed = size - held_out_count, size, per_step, seed

    def groups(self, step: int) -> tuple[list[int], list[int]]:
        """(episode index, seed) of each group of ``step``."""
        first = step * self.per_step
        indices = [(first + j) % self.train_size for j in range(self.per_step)]
        seeds = [self.seed * 1_000_003 + first + j for j in range(self.per_step)]
        return indices, seeds

    def held_out(self) -> list[int]:
        return list(range(self.train_size, self.size))

    def eval_seed(self, index: int) -> int:
        return self.seed + index


def rollout_metrics(trajectories: list[Trajectory], group_size: int) -> dict[str, float]:
    """``rollout/*``: the usual summary (EM, reward, per-turn op rates...) plus GRPO-specific figures."""
    metrics = {f"rollout/{k}": float(v) for k, v in summarize(trajectories).items()}
    rewards = [t.reward for t in trajectories]
    groups = [rewards[i:i + group_size] for i in range(0, len(rewards), group_size)]
    metrics["rollout/flat_groups"] = sum(max(g) == min(g) for g in groups) / len(groups)  # no learning signal
    lengths = [len(turn.response_ids or ()) for t in trajectories for turn in t.turns]
    metrics["rollout/response_tokens"] = sum(lengths) / max(1, len(lengths))
    return metrics


def _env_factory(args: GRPOArgs) -> Callable[[], gym.Env]:
    kwargs = json.loads(args.env_kwargs)
    if args.data_dir and atommem_env.needs_data(args.env_id):
        kwargs.setdefault("data_dir", args.data_dir)
    return lambda: gym.make(args.env_id, **kwargs)


def _check_run_dir(args: GRPOArgs, run_dir: Path) -> None:
    """Refuse to mix runs: a fresh run needs an empty folder; a resumed one, the same settings."""
    saved = run_dir / "config.json"
    if not args.resume:
        if (run_dir / "checkpoints").exists() or saved.exists():
            raise SystemExit(f"{run_dir} already holds a run; continue it with --resume or pick another --out-dir.")
        return
    if not saved.exists():
        raise SystemExit(f"--resume: {run_dir} holds no run (no config.json); start without --resume.")
    before = json.loads(saved.read_text())
    # A setting the saved config lacks was added after the run started, which then ran with what is
    # now that setting's default.
    defaults = {f.name: f.default for f in fields(args) if f.default is not MISSING}
    changed = {k: (before.get(k, defaults.get(k)), v) for k, v in asdict(args).items()
               if k not in args.resumable and before.get(k, defaults.get(k)) != v}
    if changed:
        details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items()))
        raise SystemExit(f"--resume with different settings ({details}); resume with the run's own settings.")


def _progress(start: int, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="grpo", unit="step")

