"""The settings of a GRPO run (each field is a ``--flag`` of ``experiments/grpo_train.py``) and its presets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from agents.training.cli import arg, json_object
from agents.training.envs import training_data
from atommem_env.errors import ConfigError

PRECISIONS = ("bfloat16", "float32")
RECOMPUTE = ("auto", "on", "off")

# Options that may change when a run is resumed; any other difference is refused. allow_dev_training is
# a permission, not a setting: a run begun on dev before the flag existed resumes by adding it.
RESUMABLE = ("preset", "steps", "resume", "logger", "eval_every", "save_every", "keep_checkpoints", "device",
             "allow_dev_training")


@dataclass
class GRPOArgs:
    """Command-line arguments (each field is a ``--flag``); defaults are the paper's recipe (SPEC §8)."""

    resumable: ClassVar[tuple[str, ...]] = RESUMABLE  # may differ between a run and its --resume

    preset: str | None = arg(None, "a name of PRESETS; fills every flag not given")
    model: str = arg("smollm2", "smollm2, a hub name or a local folder (e.g. an SFT run's final/)")
    env_id: str = arg("AtomMem-Synthetic-v0", "the env to train on (any registered id)")
    env_kwargs: str = arg("{}", "JSON object of env options")
    data_dir: str | None = arg(None, "folder of the benchmark files (real-data env ids)")
    steps: int = arg(100, "optimizer steps (the paper: about 100)")
    prompts_per_step: int = arg(8, "episodes per step (the paper: 8 prompts)")
    group_size: int = arg(8, "rollouts per episode (the paper: 8)")
    rollout_batch_size: int = arg(16, "envs stepped together, i.e. prompts per generation batch")
    temperature: float = arg(1.0, "sampling temperature (the paper: 1.0)")
    top_p: float = arg(0.99, "nucleus sampling mass (the paper: 0.99)")
    max_new_tokens: int = arg(4096, "response budget per turn (the paper: 4096)")
    max_context: int | None = arg(None, "prompt + response tokens; default: the model's limit")
    lr: float = arg(1e-6, "learning rate after warm-up (the paper: 1e-6)")
    warmup_steps: int = arg(20, "linear warm-up steps (the paper: 20)")
    kl_coef: float = arg(0.001, "k3 KL penalty to the initial model (the paper: 0.001; 0 runs no reference)")
    clip_low: float = arg(0.2, "policy-ratio floor is 1 - clip_low (the paper: 0.2)")
    clip_high: float = arg(0.28, "policy-ratio cap is 1 + clip_high (the paper: 0.28)")
    dual_clip: float = arg(3.0, "with a negative advantage A a token's loss is at most -A * dual_clip (the "
                                "reference: 3.0); 0 turns dual clipping off")
    recompute_old_logprobs: str = arg("auto", "on: the ratio's old logprobs are the learner's own before the update "
                                              "(verl's recomputation); off: the sampler's; auto: on unless the sampler "
                                              "is the hf engine computing in float32 (CPU, or --precision float32)")
    precision: str = arg("bfloat16", "what sampler and learner both compute in on CUDA: bfloat16 (autocast over "
                                     "float32 weights; the reference's) or float32; CPU computes in float32")
    dynamic_sampling: bool = arg(False, "DAPO's dynamic sampling: sample rounds of --prompts-per-step groups until "
                                        "that many have mixed rewards, and train on those only")
    max_sample_rounds: int = arg(4, "dynamic sampling's rounds per step at most; at the cap the step trains on the "
                                    "mixed groups it has")
    micro_batch_tokens: int = arg(16_384, "padded tokens per forward/backward pass (gradients accumulate)")
    scale_by_std: bool = arg(False, "the paper: no std scaling of advantages")
    lora_r: int = arg(0, "> 0 trains LoRA adapters of this rank instead of all weights")
    eval_every: int = arg(10, "steps between greedy evaluations of the held-out episodes")
    eval_episodes: int = arg(16, "held-out episodes (the last ones of the source; never trained on)")
    save_every: int = arg(10, "steps between checkpoints (and the last step)")
    keep_checkpoints: int = arg(2, "newest checkpoints kept")
    out_dir: str = arg("", "the run's folder (required)")
    resume: bool = arg(False, "continue the run in --out-dir from its last checkpoint")
    logger: str = arg("tensorboard", "tensorboard, wandb or none (metrics.csv is always written)")
    seed: int = arg(0, "seeds episode choice and sampling")
    device: str | None = arg(None, "cpu, cuda, cuda:1...; default: CUDA when available")
    allow_dev_training: bool = arg(False, "train a real-benchmark id on its dev split, where evaluate.py scores; "
                                          "refused without this flag (recorded in config.json)")

    def validate(self) -> None:
        """Check every argument.

        Raises:
            ConfigError: one line per problem, each saying what to fix.
        """
        problems = self.problems()
        if problems:
            raise ConfigError("Invalid arguments:\n  " + "\n  ".join(problems))
        json_object("--env-kwargs", self.env_kwargs, '{"num_documents": 6}')

    def problems(self) -> list[str]:
        """What is wrong with the arguments, one line per problem (empty when they are valid)."""
        return [
            message for ok, message in [
                (self.steps >= 1, f"--steps {self.steps}: train at least one step."),
                (self.prompts_per_step >= 1, f"--prompts-per-step {self.prompts_per_step}: need at least 1."),
                (self.group_size >= 2, f"--group-size {self.group_size}: GRPO compares at least 2 rollouts "
                                       "of an episode (the paper: 8)."),
                (self.rollout_batch_size >= 1, f"--rollout-batch-size {self.rollout_batch_size}: need at least 1."),
                (self.temperature > 0, f"--temperature {self.temperature}: GRPO samples; use a positive "
                                       "temperature (the paper: 1.0)."),
                (0 < self.top_p <= 1, f"--top-p {self.top_p}: must be in (0, 1]."),
                (self.max_new_tokens >= 1, f"--max-new-tokens {self.max_new_tokens}: need at least 1."),
                (self.eval_every >= 1 and self.save_every >= 1,
                 f"--eval-every {self.eval_every} / --save-every {self.save_every}: need at least 1."),
                (self.eval_episodes >= 0, f"--eval-episodes {self.eval_episodes}: need 0 or more."),
                (self.keep_checkpoints >= 1, f"--keep-checkpoints {self.keep_checkpoints}: keep at least 1."),
                (self.lora_r >= 0, f"--lora-r {self.lora_r}: 0 trains all weights; > 0 is the adapter rank."),
                (self.dual_clip == 0 or self.dual_clip > 1,
                 f"--dual-clip {self.dual_clip}: the bound must be above 1 (the reference: 3.0), or 0 for none."),
                (self.recompute_old_logprobs in RECOMPUTE,
                 f"--recompute-old-logprobs {self.recompute_old_logprobs}: choose auto, on or off."),
                (self.precision in PRECISIONS, f"--precision {self.precision}: choose bfloat16 or float32, one "
                                               "precision for sampler and learner."),
                (self.max_sample_rounds >= 1, f"--max-sample-rounds {self.max_sample_rounds}: need at least 1."),
                (self.logger in ("tensorboard", "wandb", "none"),
                 f"--logger {self.logger}: choose tensorboard, wandb or none."),
                (bool(self.out_dir), "--out-dir is required: the run's checkpoints and metrics go there."),
            ] if not ok
        ] + self.split_problems()

    def learner_settings(self, *, engine: str, on_cuda: bool) -> dict[str, Any]:
        """The :class:`~agents.training.learner_config.LearnerConfig` fields these flags set (all but
        ``pad_token_id`` and ``lora``), for a learner fed by the sampler ``engine`` (``"hf"`` or ``"vllm"``)."""
        return {
            "lr": self.lr, "warmup_steps": self.warmup_steps, "kl_coef": self.kl_coef, "clip_low": self.clip_low,
            "clip_high": self.clip_high, "dual_clip": self.dual_clip, "micro_batch_tokens": self.micro_batch_tokens,
            "temperature": self.temperature, "bf16": self.precision == "bfloat16",
            "recompute_old_logprobs": self.recomputes_old_logprobs(engine=engine, on_cuda=on_cuda),
        }

    def recomputes_old_logprobs(self, *, engine: str, on_cuda: bool) -> bool:
        """Whether the learner's own logprobs are the old ones (``--recompute-old-logprobs``).

        ``auto`` recomputes whenever the sampler's logprobs can differ from the learner's by more than
        float32 rounding: a vLLM sampler (another engine's kernels), or bfloat16 on CUDA, where even the
        hf sampler's cached decoding and the learner's full forward round differently at bfloat16's
        8-bit mantissa. Only the hf sampler computing in float32 (CPU, or ``--precision float32``) gives
        the learner's logprobs to about 1e-6, and its own are then used, as they equal the recomputed ones.
        """
        if self.recompute_old_logprobs != "auto":
            return self.recompute_old_logprobs == "on"
        return engine != "hf" or (on_cuda and self.precision == "bfloat16")

    def split_problems(self) -> list[str]:
        """Refuse to train a real-benchmark id on its dev split (the evaluation split) unless asked for."""
        try:
            data = training_data(self.env_id, json.loads(self.env_kwargs))
        except ConfigError as error:  # an unknown split (a ConfigError is also a ValueError: first)
            return [f"--env-kwargs {self.env_kwargs}: {error}"]
        except (ValueError, TypeError, AttributeError):  # bad JSON: validate() reports it with an example
            return []
        if data.get("split") != "dev" or self.allow_dev_training:
            return []
        return [f"--env-id {self.env_id} trains on its dev split (the default split; evaluate.py scores there), "
                "so the evaluation would see training questions. Train on the train split: --env-kwargs "
                "'{\"split\": \"train\"}' (--preset paper does), or pass --allow-dev-training to do it anyway."]


PRESETS: dict[str, dict[str, Any]] = {
    # SPEC §8 on the paper's training data (HotpotQA); set --model to your SFT checkpoint of Qwen3-8B.
    # It trains on the train split (the reference's RL data; evaluate.py scores on dev). Giving --env-kwargs
    # replaces this JSON object: keep "split": "train" in yours.
    "paper": {"model": "Qwen/Qwen3-8B", "env_id": "AtomMem-HotpotQA-200-v0", "max_context": 16_384 + 4_096,
              "env_kwargs": '{"split": "train"}'},
    # A smoke run that exercises every part of a run in minutes on a CPU: rollouts of the real SmolLM2, an
    # update, the weight sync, a greedy evaluation, a checkpoint (and, with --steps 2 --resume, a resume).
    # Episodes stop after 3 turns: the untrained model rarely advances through the chunks, and a full turn
    # budget (20 turns here) made one rollout take 10 minutes on 2 busy cores. The KL term makes the learner
    # forward and back-propagate every sample even when every group is flat (the untrained model scores 0,
    # and samples of advantage 0 are otherwise not forwarded).
    "cpu-smoke": {
        "model": "smollm2", "env_id": "AtomMem-Synthetic-Tiny-v0", "env_kwargs": '{"max_turns": 3}',
        "steps": 1, "prompts_per_step": 1, "group_size": 2, "rollout_batch_size": 2, "max_new_tokens": 24,
        "lr": 1e-5, "warmup_steps": 0, "kl_coef": 0.001, "eval_every": 1, "eval_episodes": 1, "save_every": 1,
        "keep_checkpoints": 1, "micro_batch_tokens": 2_048,
    },
    # The compact Synthetic setting of docs/TRAINING.md, for SmolLM2-135M on 2 CPU cores (about 15 minutes
    # a step there); responses of its SFT teacher run to about 260 tokens.
    "cpu-small": {
        "model": "smollm2", "env_id": "AtomMem-Synthetic-Tiny-v0",
        "steps": 4, "prompts_per_step": 2, "group_size": 4, "rollout_batch_size": 8, "max_new_tokens": 256,
        "lr": 1e-5, "warmup_steps": 0, "kl_coef": 0.0, "eval_every": 2, "eval_episodes": 8, "save_every": 2,
        # Float32 activations kept for backward cost SmolLM2 (30 layers) about 2 MB per token: 8K-token
        # micro-batches were OOM-killed on a 24 GB machine; with 2K the whole run peaks at about 6.5 GB.
        "micro_batch_tokens": 2_048,
    },
    # The same setting for the small model of experiments/make_small_model.py after SFT (pass --model
    # <its SFT run>/final): the paper's 8 groups of 8 rollouts, which such a model affords on a CPU.
    # Its SFT rate was 1e-3, so 1e-4 keeps the paper's SFT-to-GRPO ratio of ten. Checkpoints every
    # step, so a run on a shared machine stops and resumes losing at most one step.
    "cpu-small-model": {
        "env_id": "AtomMem-Synthetic-Tiny-v0", "steps": 60, "prompts_per_step": 8, "group_size": 8,
        "rollout_batch_size": 32, "max_new_tokens": 256, "lr": 1e-4, "warmup_steps": 0, "kl_coef": 0.0,
        "eval_every": 5, "eval_episodes": 64, "save_every": 1, "keep_checkpoints": 2, "micro_batch_tokens": 8_192,
    },
}

