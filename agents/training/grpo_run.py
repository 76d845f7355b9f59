"""GRPO in one process: the model, its learner, and the sampling and evaluation policies sharing it.

The model being trained is the policy (shared in memory, not copied: the weights the learner updates
are the weights the next step samples from). :func:`agents.training.runs.train` drives it.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from agents.training.envs import EnvSpec
from agents.training.grpo_config import GRPOArgs
from agents.training.rollout import Trajectory, rollout
from agents.training.runs import EpisodePlan, eval_metrics, grpo_step, newest_checkpoint

log = logging.getLogger(__name__)


class GRPORun:
    """A :class:`~agents.training.runs.Run` in this process (see the module docstring)."""

    def __init__(self, args: GRPOArgs) -> None:
        from agents.hf_policy import TransformersPolicy
        from agents.models import load_causal_lm
        from agents.training.learner import Learner, LearnerConfig, LoraSettings

        self.args = args
        self.env = EnvSpec.from_flags(args.env_id, args.env_kwargs, args.data_dir)
        self.plan = EpisodePlan.for_run(args, self.env)
        # float32 weights: the optimizer's master copy. Sampler and learner share the model (and so its
        # updates) and compute in one precision, --precision's on CUDA (float32 on CPU).
        model, self.tokenizer = load_causal_lm(args.model, args.device, dtype="float32")
        on_cuda = next(model.parameters()).device.type == "cuda"
        lora = LoraSettings(r=args.lora_r, alpha=2.0 * args.lora_r) if args.lora_r else None
        reference = copy.deepcopy(model) if args.kl_coef > 0 and lora is None else None
        config = LearnerConfig(**args.learner_settings(engine="hf", on_cuda=on_cuda),
                               pad_token_id=self.tokenizer.pad_token_id, lora=lora)
        self.learner = Learner(model, config, reference=reference)
        log.info("Old logprobs: %s", "recomputed by the learner" if config.recompute_old_logprobs else "the sampler's")
        shared: dict[str, Any] = {"max_new_tokens": args.max_new_tokens, "batch_size": args.rollout_batch_size,
                  "max_context": args.max_context, "name": f"grpo:{args.model}", "cache_size": 0, "bf16": config.bf16}
        self.sampler = TransformersPolicy.from_model(
            self.learner.model, self.tokenizer, temperature=args.temperature, top_p=args.top_p, seed=args.seed,
            **shared,
        )
        self.greedy = TransformersPolicy.from_model(self.learner.model, self.tokenizer, temperature=0.0, **shared)

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
        from agents.training.checkpoint import load_checkpoint

        path = newest_checkpoint(run_dir)
        start, _ = load_checkpoint(path, self.learner, generators=self.generators())
        log.info("Resumed %s at step %d", path, start)
        return start

    def export(self, folder: Path) -> None:
        """Write the trained model as a ``from_pretrained`` folder."""
        from agents.training.checkpoint import export_model

        export_model(self.learner, folder, tokenizer=self.tokenizer)

    def close(self) -> None:
        """Nothing to release in one process."""

    def step(self, step: int) -> dict[str, float]:
        """Roll out this step's groups, update once, and return the step's metrics."""
        return grpo_step(lambda sample_round: self.collect(step, sample_round), self.learn, self.args)

    def collect(self, step: int, sample_round: int = 0) -> list[Trajectory]:
        """Round ``sample_round`` of the step's episodes: ``group_size`` rollouts of each of its groups,
        group by group."""
        pairs = self.plan.rollouts(step, self.args.group_size, sample_round)
        self.learner.model.eval()
        return rollout(self.env.factory(), self.sampler, [seed for seed, _ in pairs], env_id=self.env.env_id,
                       indices=[index for _, index in pairs], batch_size=self.args.rollout_batch_size)

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
        trajectories = rollout(self.env.factory(), self.greedy, [self.plan.eval_seed(i) for i in indices],
                               env_id=self.env.env_id, indices=indices, batch_size=self.args.rollout_batch_size)
        return eval_metrics(trajectories)
