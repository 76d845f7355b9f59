"""Supervised fine-tuning of a local model on teacher trajectories (SPEC §8's first stage).

    python experiments/evaluate.py --policy heuristic --episodes 200 --out-dir runs/evaluate/teacher
    python experiments/sft.py --trajectories runs/evaluate/teacher/trajectories.jsonl --model smollm2 \\
        --preset cpu-small --out-dir runs/sft/smollm2
    python experiments/sft.py ... --out-dir runs/sft/smollm2 --resume          # continue after a crash
    python experiments/evaluate.py --policy hf:runs/sft/smollm2/final --policy-kwargs '{"temperature": 0}'

Every turn of each teacher episode with reward >= ``--min-reward`` becomes one sample (prompt: the
observation through the student's chat template; response: the teacher's text and the end-of-turn
token, or the teacher's own token ids when it had them; see :mod:`agents.training.sft_data`). Each epoch
visits the samples in a seeded shuffle, ``--batch-size`` samples per optimizer step, and the loss is
the token-mean negative log-likelihood of the response tokens (:meth:`Learner.sft_step`).

The defaults are the paper's recipe (SPEC §8: reward >= 0.5, 3 epochs). The paper gives no SFT
learning rate; 1e-5 with 10 warm-up steps is a common full fine-tuning choice for models of a few
billion parameters (GRPO then uses 1e-6). ``--preset cpu-small`` keeps the recipe but sizes sequences
and batches for SmolLM2-135M on a CPU.

Writes into ``--out-dir``: ``checkpoints/step-*/`` every ``--save-every`` steps and at the end (with
the data cursor, so ``--resume`` continues exactly), ``final/`` (a plain model folder:
``--policy hf:<out-dir>/final``), ``metrics.csv`` and TensorBoard events (``train/loss``,
``train/grad_norm``, ``train/lr``, ``train/tokens_per_s``, ``train/epoch``; ``eval/em`` etc. when
``--eval-env-ids`` is given), and ``config.json``.
"""

from __future__ import annotations

import logging
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from tqdm import tqdm

from agents.models import load_causal_lm
from agents.training.checkpoint import CheckpointError, export_model, latest_checkpoint, load_checkpoint, save_checkpoint
from agents.training.cli import arg, parse_dataclass
from experiments.evaluate import fresh_run_dir
from agents.training.learner import Learner, LearnerConfig, LoraSettings
from agents.training.sft_args import check_args
from agents.training.sft_data import Cursor, SampleStats, batches, read_trajectories, steps_per_epoch, teacher_samples
from agents.training.sft_eval import evaluate_final
from agents.training.tracking import BACKENDS, Tracker

log = logging.getLogger("sft")

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},  # the defaults are the paper's recipe
    # SmolLM2-135M on a 2-core CPU: compact prompts (use compact envs for the teacher, e.g. Synthetic
    # with few documents and short chunks), small steps, frequent checkpoints.
    "cpu-small": {"batch_size": 4, "warmup_steps": 2, "micro_batch_tokens": 4096, "max_prompt_tokens": 3072,
                  "max_seq_tokens": 4096, "save_every": 10},
}


@dataclass
class Args:
    """Command-line arguments (each field is a ``--flag``)."""

    trajectories: list[str] = arg([], "trajectories.jsonl files of teacher episodes (from evaluate.py)")
    model: str = arg("smollm2", "the student: smollm2, a Hugging Face model name or a local folder")
    out_dir: str = arg("", "the run folder; empty: a fresh runs/sft/<model>-<time>")
    preset: str | None = arg(None, "fill in the unset flags from a preset")
    min_reward: float = arg(0.5, "keep teacher episodes with at least this reward (paper: 0.5)")
    epochs: int = arg(3, "passes over the samples (paper: 3)")
    batch_size: int = arg(16, "samples (turns) per optimizer step")
    lr: float = arg(1e-5, "AdamW learning rate after warm-up (the paper gives none for SFT)")
    warmup_steps: int = arg(10, "optimizer steps of linear warm-up, then constant")
    micro_batch_tokens: int = arg(16_384, "padded tokens per forward/backward pass (gradients accumulate)")
    max_prompt_tokens: int = arg(16_384, "longer text prompts lose their middle, as the policy would cut them")
    max_seq_tokens: int = arg(20_480, "turns with more prompt + response tokens are skipped and counted")
    lora_r: int = arg(0, "train LoRA adapters of this rank instead of all weights (0: full fine-tuning)")
    dtype: str = arg("float32", "weights dtype (float32 keeps exact master weights; CUDA computes in bf16)")
    device: str = arg("", "cpu, cuda, cuda:1...; empty: CUDA when available")
    save_every: int = arg(50, "save a checkpoint every N optimizer steps (0: only at the end)")
    keep_checkpoints: int = arg(2, "checkpoints kept, newest first")
    max_steps: int = arg(0, "stop after this many optimizer steps in all (0: run every epoch)")
    resume: bool = arg(False, "continue the run in --out-dir from its latest checkpoint")
    logger: str = arg("tensorboard", "metrics backend besides metrics.csv: tensorboard, wandb or none")
    seed: int = arg(0, "seeds the shuffles and every RNG")
    eval_env_ids: list[str] = arg([], "after training, evaluate the final model (greedy) on these env ids")
    eval_episodes: int = arg(20, "episodes per evaluation env id")
    eval_data_dir: str = arg("", "benchmark data folder for the evaluation env ids")
    eval_env_kwargs: str = arg("{}", "JSON object of env options for evaluation")
    eval_policy_kwargs: str = arg("{}", 'JSON object of TransformersPolicy options, e.g. {"max_new_tokens": 256}')

    def validate(self) -> None:
        """Check every argument; exits with one line per problem, each saying what to fix."""
        problems = check_args(self, PRESETS)
        if problems:
            raise SystemExit("sft.py: invalid arguments:\n  " + "\n  ".join(problems))
        if not self.out_dir:
            self.out_dir = fresh_run_dir(Path(self.model).name or self.model, root=Path("runs/sft"))


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse ``argv`` (``sys.argv`` when ``None``) into validated :class:`Args` (flags beat the preset)."""
    args = parse_dataclass(Args, argv, presets=PRESETS, choices={"logger": BACKENDS}, description=__doc__)
    args.validate()
    return args


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # CPU and every CUDA device


def learner_config(args: Args, pad_token_id: int) -> LearnerConfig:
    lora = LoraSettings(r=args.lora_r, alpha=2.0 * args.lora_r) if args.lora_r else None
    return LearnerConfig(lr=args.lr, warmup_steps=args.warmup_steps, kl_coef=0.0,
                         micro_batch_tokens=args.micro_batch_tokens, pad_token_id=pad_token_id, lora=lora)


def data_identity(args: Args, stats: SampleStats) -> dict[str, Any]:
    """What a resumed run must share with the saved one for its data cursor to mean the same samples."""
    return {
        "trajectories": [str(Path(p).resolve()) for p in args.trajectories], "model": args.model,
        "min_reward": args.min_reward, "max_prompt_tokens": args.max_prompt_tokens,
        "max_seq_tokens": args.max_seq_tokens, "batch_size": args.batch_size, "seed": args.seed,
        "samples": stats.samples,
    }


def start(args: Args, learner: Learner, identity: dict[str, Any]) -> tuple[int, Cursor]:
    """(step, cursor) to train from: zero for a new run, the latest checkpoint's with ``--resume``."""
    run = Path(args.out_dir)
    latest = latest_checkpoint(run)
    if not args.resume:
        if latest is not None or (run / "final").exists():
            raise SystemExit(f"{run} already holds a run; pass --resume to continue it, or choose another --out-dir.")
        return 0, Cursor()
    if latest is None:
        raise SystemExit(f"--resume: {run} holds no checkpoint; run without --resume to start from the beginning.")
    try:
        step, state = load_checkpoint(latest, learner)
    except CheckpointError as error:
        raise SystemExit(f"--resume: {error}") from None
    saved = state.get("data", {})
    changed = sorted(k for k in identity if saved.get(k) != identity[k])
    if changed:
        details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {identity[k]!r}" for k in changed)
        raise SystemExit(
            f"--resume: the data differs from the saved run's ({details}). Resume with the run's flags "
            f"(see {run / 'config.json'}) or start a new run in another --out-dir."
        )
    return step, Cursor(**state["cursor"])


def fit(args: Args, learner: Learner, samples: list, tokenizer: Any, tracker: Tracker,
        step: int, cursor: Cursor, identity: dict[str, Any]) -> int:
    """Optimizer steps from ``(step, cursor)`` to the end (or ``--max-steps``); returns the last step."""
    total = args.epochs * steps_per_epoch(len(samples), args.batch_size)
    total = min(total, args.max_steps) if args.max_steps else total

    def save() -> None:
        state = {"cursor": asdict(cursor), "data": identity}
        save_checkpoint(args.out_dir, learner, step, tokenizer=tokenizer, state=state, keep=args.keep_checkpoints)

    bar = tqdm(total=total, initial=min(step, total), desc="sft", unit="step")
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
    names = ("loss", "grad_norm", "lr", "tokens_per_s", "entropy", "response_tokens")
    return {**{f"train/{name}": metrics[name] for name in names},
            "train/epoch": cursor.epoch + cursor.position / num_samples}


def train(args: Args) -> tuple[Path, int]:
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
        raise SystemExit(
            f"No SFT samples: {stats.kept_episodes} of {stats.episodes} episodes have reward >= {args.min_reward} "
            f"and {stats.too_long} of their {stats.turns} turns exceed --max-seq-tokens {args.max_seq_tokens}. "
            "Lower --min-reward, raise --max-seq-tokens, or collect more teacher episodes."
        )
    learner = Learner(model, learner_config(args, tokenizer.pad_token_id))
    identity = data_identity(args, stats)
    step, cursor = start(args, learner, identity)
    config = {**asdict(args), "samples": asdict(stats)}
    with Tracker(args.out_dir, backend=args.logger, config=config, resume=args.resume) as tracker:
        if args.resume:
            tracker.truncate_after(step)
        step = fit(args, learner, samples, tokenizer, tracker, step, cursor, identity)
    final = export_model(learner, Path(args.out_dir) / "final", tokenizer=tokenizer)
    return final, step


def main(argv: list[str] | None = None) -> Path:
    """Command-line entry point: train, export ``final/``, optionally evaluate it; returns ``final/``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    import transformers

    transformers.utils.logging.disable_progress_bar()  # its per-save bars would break up the training bar
    args = parse_args(argv)
    final, step = train(args)
    print(f"SFT finished at step {step}: model in {final}/, metrics in {args.out_dir}/metrics.csv")
    if args.eval_env_ids:
        metrics = evaluate_final(args, final)  # the learner is gone by now: one model in memory
        with Tracker(args.out_dir, backend=args.logger, resume=True) as tracker:
            tracker.log(metrics, step)
        print("evaluation: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items())))
    return final


if __name__ == "__main__":
    main()
