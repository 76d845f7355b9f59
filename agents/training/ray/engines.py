"""Inference engines of rollout workers: a sampling and a greedy policy over one model whose weights
the trainer replaces after every update.

    engine = make_engine(EngineConfig(kind="hf", model="smollm2"))
    engine.policy(greedy=False).act(observations)
    engine.load_weights(state_dict)            # the learner's new weights (a plain name -> tensor dict)

``kind="hf"`` is a transformers model (:class:`HFEngine`, any machine); ``kind="vllm"`` is an in-process
vLLM engine (GPU hosts, or vLLM's CPU build: :class:`agents.training.ray.vllm_engine.VLLMEngine`). Both
offer ``policy``, ``reseed``, ``load_weights``, ``sleep``, ``wake`` and ``torch_threads``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.training.ray.engine_config import ENGINES, EngineConfig


def make_engine(config: EngineConfig) -> Any:
    """The engine ``config.kind`` names.

    Raises:
        ValueError: an unknown kind.
    """
    if config.kind == "hf":
        return HFEngine(config)
    if config.kind == "vllm":
        from agents.training.ray.vllm_engine import VLLMEngine

        return VLLMEngine(config)
    raise ValueError(f"engine {config.kind!r} is unknown; choose one of {', '.join(ENGINES)}.")


class HFEngine:
    """A transformers model behind a sampling and a greedy :class:`~agents.hf_policy.TransformersPolicy`.

    The weights are float32, like the learner's, and the engine computes in the learner's precision
    (``config.precision``: bfloat16 autocast on CUDA, as the learner's), so the sampling logprobs and
    the learner's come from the same arithmetic up to rounding.
    """

    def __init__(self, config: EngineConfig) -> None:
        from agents.hf_policy import TransformersPolicy
        from agents.models import load_causal_lm

        self.device = config.device
        self.model, self.tokenizer = load_causal_lm(config.model, config.device, dtype="float32")
        shared: dict[str, Any] = {"max_new_tokens": config.max_new_tokens, "batch_size": config.batch_size,
                  "max_context": config.max_context, "name": f"rollout:{config.model}", "cache_size": 0,
                  "bf16": config.precision == "bfloat16"}
        self.sampler = TransformersPolicy.from_model(
            self.model, self.tokenizer, temperature=config.temperature, top_p=config.top_p, seed=config.seed, **shared
        )
        self.greedy = TransformersPolicy.from_model(self.model, self.tokenizer, temperature=0.0, **shared)

    def policy(self, greedy: bool) -> Any:
        """The greedy policy (evaluation) or the sampling one (rollouts for training)."""
        return self.greedy if greedy else self.sampler

    def reseed(self, seed: int) -> None:
        """Seed the sampler: the same seed, prompts and weights give the same samples."""
        self.sampler.generator.manual_seed(seed)

    def torch_threads(self) -> list[int]:
        """Torch threads the engine computes on (this process's; benchmarks report them)."""
        import torch

        return [torch.get_num_threads()]

    def load_weights(self, state_dict: Mapping[str, Any]) -> None:
        """Copy the learner's weights in (every key must match: a mismatch is a bug, not a warning)."""
        self.model.load_state_dict(state_dict, strict=True)

    def sleep(self) -> None:
        """Free the GPU for the learners (colocated placement); on CPU there is nothing to free."""
        if self.device != "cpu":
            import torch

            self.model.to("cpu")
            torch.cuda.empty_cache()

    def wake(self) -> None:
        """Move the model back to its device after :meth:`sleep`."""
        if self.device != "cpu":
            self.model.to(self.device)
