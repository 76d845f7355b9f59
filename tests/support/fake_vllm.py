"""A stand-in for the parts of ``vllm`` this project calls, so that the default suite needs no vLLM
(tests/test_vllm_real.py runs the real one where it is installed).

It keeps vLLM's contracts (as of vLLM 0.32): ``LLM(model, **kwargs)`` with ``tensor_parallel_size``
workers, each of which has ``model_runner.model``, ``device`` and ``reload_weights(weights_iterator=...,
is_checkpoint_format=True)`` (vLLM's in-place reload) and inherits the class named by
``worker_extension_cls`` (imported by its dotted name, as vLLM does); ``collective_rpc(method, args=...)``
calls the method on every worker and returns their results, with the arguments carried as vLLM's
engine-core messages carry them (msgpack: bytes stay bytes, tuples become lists, a tensor becomes a bare
``[dtype, shape, index]`` list) and with ``vllm.distributed.parallel_state.get_world_group().rank``
giving the worker's rank in its engine meanwhile; ``sleep(level=1)`` / ``wake_up()`` need
``enable_sleep_mode=True``; a sleeping engine cannot generate. ``generate`` answers every prompt with
the same three tokens.

``vllm.platforms.current_platform`` is the GPU build's (``device="cuda"``) or the CPU build's
(``device="cpu"``): on the CPU build ``enable_sleep_mode`` fails as in vLLM ("Sleep mode is not
supported on current platform."), ``sleep`` / ``wake_up`` do nothing (vLLM's CPU worker ignores them),
and the loaded model's own ``load_weights`` fails outside ``reload_weights`` (the CPU build repacks the
linear layers after loading).

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
    """``model_runner.model``: ``load_weights`` takes (name, tensor) pairs, like vLLM's models; on the
    CPU build only inside the worker's ``reload_weights`` (it repacks the linear layers after loading)."""

    def __init__(self) -> None:
        self.weights: dict[str, Any] = {}
        self.loaded: list[str] = []  # every name in the order it arrived
        self.reloading = False
        self.strict = False  # vLLM's CPU build: load_weights only inside reload_weights

    def load_weights(self, weights: Any) -> set[str]:
        if self.strict and not self.reloading:
            raise AttributeError("'Parameter' object has no attribute 'weight_loader'")
        loaded = set()
        for name, tensor in weights:
            self.weights[name] = tensor.clone()
            self.loaded.append(name)
            loaded.add(name)
        return loaded


class FakePlatform:
    def __init__(self, device: str) -> None:
        self.device_type = device

    def is_cpu(self) -> bool:
        return self.device_type == "cpu"

    def is_sleep_mode_available(self) -> bool:
        return self.device_type == "cuda"


class FakeWorker:
    """vLLM's worker: ``reload_weights`` restores the model's loaders, loads, and repacks."""

    model_runner: Any

    def reload_weights(self, weights_iterator: Any = None, weights_path: Any = None,
                       is_checkpoint_format: bool = True) -> None:
        assert weights_iterator is not None and is_checkpoint_format
        model = self.model_runner.model
        model.reloading = True
        try:
            model.load_weights(weights_iterator)
        finally:
            model.reloading = False
        self.model_runner.reloads += 1


class FakeLLM:
    def __init__(self, model: str, tokenizer: Any, platform: FakePlatform, **kwargs: Any) -> None:
        if kwargs.get("enable_sleep_mode") and not platform.is_sleep_mode_available():
            raise ValueError("Sleep mode is not supported on current platform.")
        self.platform = platform
        self.kwargs = {"model": model, **kwargs}
        self._tokenizer = tokenizer
        self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=64))
        self.calls: list[tuple[Any, Any]] = []
        self.events: list[str] = []
        self.asleep = False
        extension = kwargs.get("worker_extension_cls")
        bases = (FakeWorker, _import(extension)) if extension else (FakeWorker,)  # vLLM appends the extension
        worker_class = type("FakeGPUWorker", bases, {})
        self.workers = []
        for _ in range(kwargs.get("tensor_parallel_size", 1)):
            worker = worker_class()
            worker.model_runner = types.SimpleNamespace(model=FakeModel(), reloads=0)
            worker.model_runner.model.strict = platform.is_cpu()
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
        carried = _through_msgpack(args)
        results = []
        for rank, worker in enumerate(self.workers):
            WORLD_GROUP.rank = rank  # what get_world_group() says inside this worker's process
            results.append(getattr(worker, method)(*carried))
        return results

    def reset_prefix_cache(self) -> bool:
        self.events.append("reset_prefix_cache")
        return True

    def sleep(self, level: int = 1) -> None:
        if self.platform.is_cpu():
            self.events.append("sleep ignored on CPU")
            return
        if not self.kwargs.get("enable_sleep_mode"):
            raise RuntimeError("sleep() needs LLM(enable_sleep_mode=True)")
        self.events.append(f"sleep:{level}")
        self.asleep = True

    def wake_up(self) -> None:
        if self.platform.is_cpu():
            self.events.append("wake_up ignored on CPU")
            return
        self.events.append("wake_up")
        self.asleep = False


WORLD_GROUP = types.SimpleNamespace(rank=0)


def modules(tokenizer: Any, device: str = "cuda") -> dict[str, types.ModuleType]:
    """The fake ``vllm`` package (vLLM's GPU build, or its CPU build with ``device="cpu"``) and the
    submodules this project imports, by module name."""
    platform = FakePlatform(device)
    vllm = types.ModuleType("vllm")
    vllm.LLM = lambda model, **kwargs: FakeLLM(model, tokenizer, platform, **kwargs)
    vllm.SamplingParams = lambda **kwargs: types.SimpleNamespace(**kwargs)
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = platform
    distributed = types.ModuleType("vllm.distributed")
    parallel_state = types.ModuleType("vllm.distributed.parallel_state")
    parallel_state.get_world_group = lambda: WORLD_GROUP
    vllm.platforms, vllm.distributed, distributed.parallel_state = platforms, distributed, parallel_state
    return {"vllm": vllm, "vllm.platforms": platforms, "vllm.distributed": distributed,
            "vllm.distributed.parallel_state": parallel_state}


def install(monkeypatch: Any, tokenizer: Any, device: str = "cuda") -> types.ModuleType:
    """Make ``import vllm`` return the fake for the rest of the test."""
    found = modules(tokenizer, device)
    for name, module in found.items():
        monkeypatch.setitem(sys.modules, name, module)
    return found["vllm"]


def _through_msgpack(value: Any) -> Any:
    """What the other end of vLLM's msgpack message gets for ``value`` (an untyped utility argument):
    a tensor arrives as ``[dtype, shape, buffer index]``, not as a tensor (vllm/v1/serial_utils.py)."""
    if isinstance(value, (bytes, str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_through_msgpack(v) for v in value]
    if isinstance(value, dict):
        return {k: _through_msgpack(v) for k, v in value.items()}
    if type(value).__module__.startswith("torch") and hasattr(value, "shape"):
        return [str(value.dtype).removeprefix("torch."), list(value.shape), 0]
    raise TypeError(f"Object of type {type(value)} is not serializable")


def _import(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)
