"""A vLLM engine inside a rollout worker: generation, weight updates through vLLM's own loader, and
sleep mode for colocated placement (GPU hosts; ``pip install vllm``).

Weight sync: the learner's state dict reaches the worker through Ray's object store, and the engine
hands it to every one of its GPU workers with ``LLM.collective_rpc``, which calls
:meth:`WeightLoader.load_hf_weights` there (vLLM mixes the class named by ``worker_extension_cls``
into its workers). That method passes the tensors to ``model_runner.model.load_weights``, the same
loader vLLM uses for checkpoint files, which splits them for tensor parallelism and fuses q/k/v and
gate/up projections as the model expects. Then the prefix cache is reset: cached KV blocks were
computed by the old weights.

Colocated placement: the engine is built with ``enable_sleep_mode=True``; ``sleep`` (vLLM's
``LLM.sleep(level=1)``: weights offloaded to CPU memory, KV cache dropped) frees the GPU while the
learners update, ``wake`` (``LLM.wake_up()``) takes it back before the next rollouts.

This module is exercised here with a fake engine that implements the same interface (vLLM needs a GPU
this project's machines lack); see docs/DISTRIBUTED.md.
"""

from __future__ import annotations

from typing import Any, Mapping

from experiments.engines import EngineConfig

EXTENSION = "experiments.vllm_engine.WeightLoader"


class WeightLoader:
    """Mixed into each vLLM GPU worker (``worker_extension_cls``); ``self`` is that worker."""

    model_runner: Any

    def load_hf_weights(self, weights: list[tuple[str, Any]]) -> int:
        """Load Hugging Face-named tensors through the model's own ``load_weights``; returns their count."""
        self.model_runner.model.load_weights(weights=weights)
        return len(weights)


class VLLMEngine:
    """One ``vllm.LLM`` with a sampling and a greedy policy on it (see the module docstring)."""

    def __init__(self, config: EngineConfig) -> None:
        from agents.vllm_policy import VLLMPolicy

        engine_kwargs: dict[str, Any] = {"worker_extension_cls": EXTENSION}
        if config.sleep_mode:
            engine_kwargs["enable_sleep_mode"] = True
        if config.tensor_parallel_size > 1:
            # Inside a Ray actor vLLM places one worker per GPU in the actor's placement group.
            engine_kwargs["distributed_executor_backend"] = "ray"
        self.sampler = VLLMPolicy(
            config.model, temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_new_tokens,
            max_model_len=config.max_context, tensor_parallel_size=config.tensor_parallel_size, seed=config.seed,
            gpu_memory_utilization=config.gpu_memory_utilization, engine_kwargs=engine_kwargs,
            name=f"rollout:{config.model}",
        )
        self.greedy = self.sampler.with_sampling(temperature=0.0)
        self.llm = self.sampler.llm
        self.asleep = False

    def policy(self, greedy: bool) -> Any:
        if self.asleep:
            raise RuntimeError("The vLLM engine is asleep (its weights are off the GPU); call wake() first.")
        return self.greedy if greedy else self.sampler

    def reseed(self, seed: int) -> None:
        """vLLM draws from its own per-engine generator: a chunk's samples depend on the engine's
        history, so with vLLM a re-run chunk or a resumed run samples anew (see docs/DISTRIBUTED.md)."""

    def load_weights(self, state_dict: Mapping[str, Any]) -> None:
        """Every GPU worker of the engine loads the new weights; stale prefix-cache blocks are dropped."""
        was_asleep = self.asleep
        if was_asleep:
            self.wake()  # weights load into GPU memory, which a sleeping engine has released
        self.llm.collective_rpc("load_hf_weights", args=(list(state_dict.items()),))
        self.llm.reset_prefix_cache()
        if was_asleep:
            self.sleep()

    def sleep(self) -> None:
        """Release the GPU (weights to CPU memory, KV cache dropped) while the learners update."""
        if not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False
