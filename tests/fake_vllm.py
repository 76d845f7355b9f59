"""A stand-in for the parts of ``vllm`` this project calls (vLLM needs a GPU this machine lacks).

It keeps vLLM's contracts: ``LLM(model, **kwargs)`` with ``tensor_parallel_size`` GPU workers, each of
which has ``model_runner.model`` and ``device`` and inherits the class named by ``worker_extension_cls``
(imported by its dotted name, as vLLM does); ``collective_rpc(method, args=...)`` calls the method on
every worker and returns their results, with ``vllm.distributed.parallel_state.get_world_group().rank``
giving the worker's rank in its engine meanwhile; ``sleep(level=1)`` / ``wake_up()`` need
``enable_sleep_mode=True``; a sleeping engine cannot generate. ``generate`` answers every prompt with
the same three tokens.

The fake's workers share one process and are called in turn, so a collective between a fake engine's
workers (tensor parallel > 1) would wait for ever; the weight-channel tests use one worker.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

RESPONSE_IDS = [7, 8, 2]


class FakeModel:
    """``model_runner.model``: ``load_weights`` takes (name, tensor) pairs, like vLLM's models."""

    def __init__(self) -> None:
        self.weights: dict[str, Any] = {}
        self.loaded: list[str] = []  # every name in the order it arrived

    def load_weights(self, weights: Any) -> set[str]:
        loaded = set()
        for name, tensor in weights:
            self.weights[name] = tensor.clone()
            self.loaded.append(name)
            loaded.add(name)
        return loaded


class FakeLLM:
    def __init__(self, model: str, tokenizer: Any, **kwargs: Any) -> None:
        self.kwargs = {"model": model, **kwargs}
        self._tokenizer = tokenizer
        self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=64))
        self.calls: list[tuple[Any, Any]] = []
        self.events: list[str] = []
        self.asleep = False
        extension = kwargs.get("worker_extension_cls")
        bases = (_import(extension),) if extension else ()
        worker_class = type("FakeGPUWorker", bases, {})
        self.workers = []
        for _ in range(kwargs.get("tensor_parallel_size", 1)):
            worker = worker_class()
            worker.model_runner = types.SimpleNamespace(model=FakeModel())
            worker.device = "cpu"
            self.workers.append(worker)

    def get_tokenizer(self) -> Any:
        return self._tokenizer

    def generate(self, prompts: list[dict], params: Any, use_tqdm: bool = True) -> list[Any]:
        if self.asleep:
            raise RuntimeError("generate() on a sleeping engine")
        self.calls.append((prompts, params))
        outputs = []
        for prompt in prompts:
            steps = [{t: types.SimpleNamespace(logprob=-0.5 * (i + 1))} for i, t in enumerate(RESPONSE_IDS)]
            completion = types.SimpleNamespace(token_ids=list(RESPONSE_IDS), logprobs=steps,
                                               text=f"echo {len(prompt['prompt_token_ids'])}")
            outputs.append(types.SimpleNamespace(prompt_token_ids=prompt["prompt_token_ids"], outputs=[completion]))
        return outputs

    def collective_rpc(self, method: str, args: tuple = ()) -> list[Any]:
        if self.asleep:
            raise RuntimeError("collective_rpc() while the weights are offloaded")
        self.events.append(f"rpc:{method}")
        results = []
        for rank, worker in enumerate(self.workers):
            WORLD_GROUP.rank = rank  # what get_world_group() says inside this worker's process
            results.append(getattr(worker, method)(*args))
        return results

    def reset_prefix_cache(self) -> bool:
        self.events.append("reset_prefix_cache")
        return True

    def sleep(self, level: int = 1) -> None:
        if not self.kwargs.get("enable_sleep_mode"):
            raise RuntimeError("sleep() needs LLM(enable_sleep_mode=True)")
        self.events.append(f"sleep:{level}")
        self.asleep = True

    def wake_up(self) -> None:
        self.events.append("wake_up")
        self.asleep = False


WORLD_GROUP = types.SimpleNamespace(rank=0)


def modules(tokenizer: Any) -> dict[str, types.ModuleType]:
    """The fake ``vllm`` package and the submodules this project imports, by module name."""
    vllm = types.ModuleType("vllm")
    vllm.LLM = lambda model, **kwargs: FakeLLM(model, tokenizer, **kwargs)
    vllm.SamplingParams = lambda **kwargs: types.SimpleNamespace(**kwargs)
    distributed, parallel_state = types.ModuleType("vllm.distributed"), types.ModuleType("vllm.distributed.parallel_state")
    parallel_state.get_world_group = lambda: WORLD_GROUP
    vllm.distributed, distributed.parallel_state = distributed, parallel_state
    return {"vllm": vllm, "vllm.distributed": distributed, "vllm.distributed.parallel_state": parallel_state}


def install(monkeypatch: Any, tokenizer: Any) -> types.ModuleType:
    """Make ``import vllm`` return the fake for the rest of the test."""
    found = modules(tokenizer)
    for name, module in found.items():
        monkeypatch.setitem(sys.modules, name, module)
    return found["vllm"]


def _import(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)
