"""Supervised fine-tuning on teacher trajectories: the data cursor, the loop, checkpoints and resume.

The library behind ``experiments/sft.py`` (whose docstring describes the recipe and the files written).
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.models import load_causal_lm
from agents.training.checkpoint import (
    CheckpointError,
    export_model,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from agents.training.errors import RunError
from agents.training.learner import Learner, LearnerConfig, LoraSettings
from agents.training.progress import ProgressFactory, no_progress
from agents.training.sft_config import Args
from agents.training.sft_data import Cursor, SampleStats, batches, read_trajectories, steps_per_epoch, teacher_samples
from agents.training.tracking import Tracker
from atommem_env.errors import DataError

log = logging.getLogger("sft")


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (model init and dropout draw from them)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # CPU and every CUDA device


def learner_config(args: Args, pad_token_id: int, total_steps: int) -> LearnerConfig:
    """The learner's settings for SFT: ``args``' optimizer, schedule over ``total_steps``, prompt-loss weight
    and LoRA rank, no KL term (no reference model)."""
    lora = LoraSettings(r=args.lora_r, alpha=2.0 * args.lora_r) if args.lora_r else None
    # The last step (index total_steps - 1) is the first to use the floor.
    decay_steps = max(total_steps - args.warmup_steps - 1, 1) if args.lr_schedule == "cosine" else 0
    return LearnerConfig(lr=args.lr, warmup_steps=args.warmup_steps, decay_steps=decay_steps, kl_coef=0.0,
                         micro_batch_tokens=args.micro_batch_tokens, pad_token_id=pad_token_id, lora=lora,
                         prompt_loss_weight=args.prompt_loss_weight)


def total_steps(args: Args, num_samples: int) -> int:
    """The run's optimizer steps: every epoch, or ``--max-steps`` when that is fewer."""
    total = args.epochs * steps_per_epoch(num_samples, args.batch_size)
    return min(total, args.max_steps) if args.max_steps else total


def data_identity(args: Args, stats: SampleStats) -> dict[str, Any]:
    """What a resumed run must share with the saved one for its data cursor to mean the same samples."""
    return {
        "trajectories": [str(Path(p).resolve()) for p in args.trajectories], "model": args.model,
        "min_reward": args.min_reward, "max_prompt_tokens": args.max_prompt_tokens,
        "max_seq_tokens": args.max_seq_tokens, "batch_size": args.batch_size, "seed": args.seed,
        "samples": stats.samples,
    }


def start(args: Args, learner: Learner, identity: dict[str, Any]) -> tuple[int, Cursor]:
    """(step, cursor) to train from: zero for a new run, the latest checkpoint's with ``--resume``.

    Raises:
        RunError: the folder holds a run (without ``--resume``), or no checkpoint, a damaged one, or one
            of other data (with it).
    """
    run = Path(args.out_dir)
    latest = latest_checkpoint(run)
    if not args.resume:
        if latest is not None or (run / "final").exists():
            raise RunError(f"{run} already holds a run; pass --resume to continue it, or choose another --out-dir.")
        return 0, Cursor()
    if latest is None:
        raise RunError(f"--resume: {run} holds no checkpoint; run without --resume to start from the beginning.")
    try:
        step, state = load_checkpoint(latest, learner)
    except CheckpointError as error:
        raise RunError(f"--resume: {error}") from None
    saved = state.get("data", {})
    changed = sorted(k for k in identity if saved.get(k) != identity[k])
    if changed:
        details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {identity[k]!r}" for k in changed)
        raise RunError(
            f"--resume: the data differs from the saved run's ({details}). Resume with the run's flags "
            f"(see {run / 'config.json'}) or start a new run in another --out-dir."
        )
    return step, Cursor(**state["cursor"])


def fit(args: Args, learner: Learner, samples: list, tokenizer: Any, tracker: Tracker,
        step: int, cursor: Cursor, identity: dict[str, Any], progress: ProgressFactory = no_progress) -> int:
    """Optimizer steps from ``(step, cursor)`` to the end (or ``--max-steps``); returns the last step."""
    total = total_steps(args, len(samples))

    def save() -> None:
        state = {"cursor": asdict(cursor), "data": identity}
        save_checkpoint(args.out_dir, learner, step, tokenizer=tokenizer, state=state, keep=args.keep_checkpoints)

    bar = progress("sft", total, min(step, total))
    saved = step
    for indices, after in batches(len(samples), args.batch_size, args.epochs, args.seed, cursor):
        if step >= total:
            break
        metrics = learner.sft_step([samples[i] for i in indices])
        step, cursor = step + 1, after
        tracker.log(train_metrics(metrics, cursor, len(samples)), step)
        bar.update(1)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}")
        if args.save_every and step % args.save_every == 0:
            save()
            saved = step
    bar.close()
    if saved != step or latest_checkpoint(args.out_dir) is None:
        save()
    return step


def train_metrics(metrics: dict[str, float], cursor: Cursor, num_samples: int) -> dict[str, float]:
    """The step's metrics under ``train/``, with the fractional epoch the data cursor has reached."""
    names = ("loss", "grad_norm", "lr", "tokens_per_s", "entropy", "response_tokens", "prompt_loss")
    return {**{f"train/{name}": metrics[name] for name in names if name in metrics},
            "train/epoch": cursor.epoch + cursor.position / num_samples}


def train(args: Args, progress: ProgressFactory = no_progress) -> tuple[Path, int]:
    """Run SFT as ``args`` say; returns the final model folder and the last step."""
    seed_everything(args.seed)
    model, tokenizer = load_causal_lm(args.model, args.device or None, args.dtype)
    samples, stats = teacher_samples(
        read_trajectories(args.trajectories), tokenizer, min_reward=args.min_reward,
        max_prompt_tokens=args.max_prompt_tokens, max_seq_tokens=args.max_seq_tokens,
    )
    log.info(
        "%d of %d teacher episodes have reward >= %s: %d turns -> %d samples (%d over --max-seq-tokens skipped, "
        "%d prompts middle-cut, %d from the teacher's token ids)", stats.kept_episodes, stats.episodes,
        args.min_reward, stats.turns, stats.samples, stats.too_long, stats.cut_prompts, stats.from_token_ids,
    )
    if not samples:
        raise DataError(
            f"No SFT samples: {stats.kept_episodes} of {stats.episodes} episodes have reward >= {args.min_reward} "
            f"and {stats.too_long} of their {stats.turns} turns exceed --max-seq-tokens {args.max_seq_tokens}. "
            "Lower --min-reward, raise --max-seq-tokens, or collect more teacher episodes."
        )
    learner = Learner(model, learner_config(args, tokenizer.pad_token_id, total_steps(args, len(samples))))
    identity = data_identity(args, stats)
    step, cursor = start(args, learner, identity)
    config = {**asdict(args), "samples": asdict(stats)}
    with Tracker(args.out_dir, backend=args.logger, config=config, resume=args.resume) as tracker:
        if args.resume:
            tracker.truncate_after(step)
        step = fit(args, learner, samples, tokenizer, tracker, step, cursor, identity, progress)
    final = export_model(learner, Path(args.out_dir) / "final", tokenizer=tokenizer)
    return final, step

