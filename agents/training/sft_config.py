"""The settings of an SFT run (each field is a ``--flag`` of ``experiments/sft.py``) and its presets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.training.cli import arg
from agents.training.evaluation import fresh_run_dir
from agents.training.sft_checks import check_args
from atommem_env.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},  # the defaults are the paper's recipe
    # SmolLM2-135M on a 2-core CPU: compact prompts (use compact envs for the teacher, e.g. Synthetic
    # with few documents and short chunks), small steps, frequent checkpoints.
    "cpu-small": {"batch_size": 4, "warmup_steps": 2, "micro_batch_tokens": 4096, "max_prompt_tokens": 3072,
                  "max_seq_tokens": 4096, "save_every": 10},
    # The small model of experiments/make_small_model.py (1.5M parameters, randomly initialized) on the
    # compact Synthetic setting: a from-scratch model wants a far higher rate than a pretrained one, and
    # is cheap enough per token for batches of 16 turns (docs/TRAINING.md).
    "cpu-small-model": {"batch_size": 16, "lr": 1e-3, "warmup_steps": 20, "micro_batch_tokens": 8192,
                        "max_prompt_tokens": 3072, "max_seq_tokens": 4096, "save_every": 25, "keep_checkpoints": 3},
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
    warmup_steps: int = arg(10, "optimizer steps of linear warm-up, then --lr-schedule")
    lr_schedule: str = arg("constant", "after warm-up: constant, or cosine (down to a tenth of --lr at the last step)")
    prompt_loss_weight: float = arg(0.0, "each prompt token's loss counts this many times a response token's "
                                    "(0: responses only, the recipe; a from-scratch model learns to copy from prompts)")
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
        """Check every argument and pick a fresh ``--out-dir`` when none is given.

        Raises:
            ConfigError: one line per problem, each saying what to fix.
        """
        problems = check_args(self, PRESETS)
        if problems:
            raise ConfigError("sft.py: invalid arguments:\n  " + "\n  ".join(problems))
        if not self.out_dir:
            self.out_dir = fresh_run_dir(Path(self.model).name or self.model, root=Path("runs/sft"))

