"""A vLLM engine inside a rollout worker: generation, weight updates through vLLM's own loader, and
sleep mode for colocated placement (GPU hosts; ``pip install vllm``).

Weight sync reaches every GPU worker of the engine through ``LLM.collective_rpc``, which calls the
methods of :class:`WeightLoader` there (vLLM mixes the class named by ``worker_extension_cls`` into
its workers). Two routes (``--weight-sync``, see :mod:`experiments.weight_sync`):

- object store: the learner's state dict arrives in the rollout worker, and
  :meth:`WeightLoader.load_hf_weights` passes the tensors to the worker's model;
- collective: each GPU worker joins a channel to learner rank 0 once
  (:meth:`WeightLoader.open_weight_channel`), and for every update receives the tensors straight into
  GPU buffers (:meth:`WeightLoader.receive_weights`).

Either way the tensors go to ``model_runner.model.load_weights``, the loader vLLM uses for checkpoint
files, which splits them for tensor parallelism and fuses q/k/v and gate/up projections as the model
expects. Then the prefix cache is reset: cached KV blocks were computed by the old weights.

Colocated placement: the engine is built with ``enable_sleep_mode=True``; ``sleep`` (vLLM's
``LLM.sleep(level=1)``: weights offloaded to CPU memory, KV cache dropped) frees the GPU while the
learners update, ``wake`` (``LLM.wake_up()``) takes it back before the next rollouts.

This module is exercised here with a fake engine that implements the same interface (vLLM needs a GPU
this project's machines lack); see docs/DISTRIBUTED.md.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

from experiments.engines import EngineConfig

EXTENSION = "experiments.vllm_engine.WeightLoader"


class WeightLoader:
    """Mixed into each vLLM GPU worker (``worker_extension_cls``); ``self`` is that worker."""

    model_runner: Any
    device: Any

    def load_hf_weights(self, weights: list[tuple[str, Any]]) -> int:
        """Load Hugging Face-named tensors through the model's own ``load_weights``; returns their count."""
        self.model_runner.model.load_weights(weights=weights)
        return len(weights)

    def open_weight_channel(self, host: str, port: int, rank_offset: int, world_size: int, factory: str) -> None:
        """Join the weight channel as rank ``rank_offset`` + this worker's rank within its engine."""
        from vllm.distributed.parallel_state import get_world_group

        from experiments.weight_sync import open_channel

        rank = get_world_group().rank + rank_offset
        self.weight_channel = open_channel(factory, host, port, rank, world_size, self.device)

    def receive_weights(self, specs: list[tuple], version: int) -> int:
        """Receive one update announced as ``specs`` from learner rank 0 and load it; returns the count."""
        from experiments.weight_sync import receive

        return receive(self.weight_channel, specs, version,
                       lambda pairs: self.model_runner.model.load_weights(weights=pairs), self.device)


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
        with self._awake():
            self.llm.collective_rpc("load_hf_weights", args=(list(state_dict.items()),))
            self.llm.reset_prefix_cache()

    def open_weight_channel(self, host: str, port: int, rank_offset: int, world_size: int, factory: str) -> None:
        """Every GPU worker joins the weight channel (ranks ``rank_offset`` onwards)."""
        self.llm.collective_rpc("open_weight_channel", args=(host, port, rank_offset, world_size, factory))

    def receive_weights(self, specs: list[tuple], version: int) -> None:
        """Every GPU worker receives one broadcast update; stale prefix-cache blocks are dropped."""
        with self._awake():
            self.llm.collective_rpc("receive_weights", args=(specs, version))
            self.llm.reset_prefix_cache()

    @contextlib.contextmanager
    def _awake(self) -> Iterator[None]:
        """Weights load into GPU memory, which a sleeping engine has released: wake it for the load."""
        was_asleep = self.asleep
        if was_asleep:
            self.wake()
        yield
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
