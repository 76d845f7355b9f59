"""How a rollout worker builds its inference engine: plain settings that travel to Ray actors."""

from __future__ import annotations

from dataclasses import dataclass

ENGINES = ("hf", "vllm")


@dataclass(frozen=True)
class EngineConfig:
    """How a rollout worker builds its engine (plain data: it travels to Ray actors).

    Attributes:
        kind: ``"hf"`` or ``"vllm"``.
        model: what :func:`agents.models.resolve_model` accepts (``"smollm2"``, a hub name, a folder).
        device: ``"cpu"`` or ``"cuda"`` (a Ray actor sees only the GPUs it was given).
        temperature, top_p, max_new_tokens, max_context: sampling settings of the training policy.
        batch_size: prompts generated together (the HF engine's batch; vLLM schedules its own).
        seed: the engine's base seed.
        tensor_parallel_size: GPUs of one vLLM engine.
        gpu_memory_utilization: vLLM's share of each GPU (lower it when colocated with learners).
        sleep_mode: the engine can release its GPU memory between rollouts (colocated placement).
        precision: what the engine computes in on CUDA, the learners' precision (``GRPOArgs.precision``):
            ``"bfloat16"`` or ``"float32"``. On CPU both compute in float32.
    """

    kind: str = "hf"
    model: str = "smollm2"
    device: str = "cpu"
    temperature: float = 1.0
    top_p: float = 0.99
    max_new_tokens: int = 4096
    max_context: int | None = None
    batch_size: int = 16
    seed: int = 0
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    sleep_mode: bool = False
    precision: str = "bfloat16"

