"""How the learners' new weights reach the rollout engines after each update (``--weight-sync``).

- ``object-store`` (:class:`ObjectStoreSync`, the default; the only one for the ``hf`` engine and on
  CPU): learner rank 0 puts its full state dict into Ray's object store, and every rollout worker
  fetches it and loads it into its engine.
- ``collective`` (:class:`CollectiveSync`, ``vllm`` engines on GPU hosts): the route of vLLM's RLHF
  examples. Learner rank 0 and every vLLM GPU worker form one extra process group (vLLM's
  ``StatelessProcessGroup`` with a ``PyNcclCommunicator``: rank 0 the learner, then each engine's
  tensor-parallel workers), and rank 0 broadcasts the tensors GPU to GPU, never through host memory.

One collective update (``version`` = the number of updates behind the weights):

1. the driver announces the update to every engine (the manifest of ``(name, dtype, shape)`` fixed
   when the channel opened, and the version) and asks every learner rank to send;
2. learner rank 0 broadcasts a header ``[version, tensor count]``, then each tensor in manifest order
   (sharded learner ranks all-gather each tensor with it, one at a time);
3. each vLLM worker checks the header against its announcement, receives each tensor into an empty
   buffer of the announced dtype and shape, and hands it to ``model.load_weights`` (which splits it
   for tensor parallelism and fuses q/k/v as for checkpoint files).

A channel is any object with ``broadcast(tensor, src)``, made by a factory named by its dotted path
(plain data, so it travels through Ray and ``collective_rpc``): :class:`PyNcclChannel` on GPU hosts;
the tests substitute a gloo group (``tests/support/gloo_channel.py``) to run the protocol on CPU.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from agents.training.errors import RunStopped

NCCL_CHANNEL = "agents.training.ray.weight_sync.PyNcclChannel"

TensorSpec = tuple[str, str, tuple[int, ...]]  # name, dtype name ("float32"), shape


class WeightSyncError(RunStopped):
    """The engines and the learner disagree about a weight update (or a side of it died)."""


def manifest(tensors: Iterable[tuple[str, torch.Tensor]]) -> list[TensorSpec]:
    """``(name, dtype, shape)`` of each tensor (a sharded tensor's are its whole tensor's)."""
    return [(name, str(t.dtype).removeprefix("torch."), tuple(t.shape)) for name, t in tensors]


def send(channel: Any, tensors: Iterable[tuple[str, torch.Tensor]], specs: Sequence[TensorSpec], version: int,
         device: torch.device | str) -> int:
    """Broadcast the header, then each tensor (which must match ``specs`` in order); returns the count."""
    channel.broadcast(torch.tensor([version, len(specs)], dtype=torch.int64, device=device), src=0)
    sent = 0
    for (name, tensor), spec in zip(tensors, specs, strict=True):
        if manifest([(name, tensor)])[0] != tuple(spec):
            raise WeightSyncError(f"The learner's tensor {name} {tuple(tensor.shape)} does not match the announced "
                                  f"{spec}; the model changed after the channel opened.")
        channel.broadcast(tensor.to(device).contiguous(), src=0)
        sent += 1
    return sent


def receive(channel: Any, specs: Sequence[TensorSpec], version: int,
            load: Callable[[list[tuple[str, torch.Tensor]]], Any], device: torch.device | str) -> int:
    """Receive one update announced as ``specs`` / ``version``, loading each tensor as it arrives."""
    header = torch.zeros(2, dtype=torch.int64, device=device)
    channel.broadcast(header, src=0)
    check_header(header.tolist(), specs, version)
    for name, dtype, shape in specs:
        buffer = torch.empty(shape, dtype=getattr(torch, dtype), device=device)
        channel.broadcast(buffer, src=0)
        load([(name, buffer)])
    return len(specs)


def check_header(header: Sequence[int], specs: Sequence[TensorSpec], version: int) -> None:
    """The sender's ``[version, count]`` must be what this receiver was announced."""
    sent_version, count = int(header[0]), int(header[1])
    if (sent_version, count) != (version, len(specs)):
        raise WeightSyncError(
            f"The learner sends weights version {sent_version} ({count} tensors), but this engine was announced "
            f"version {version} ({len(specs)} tensors): the driver's bookkeeping and the broadcast are out of step. "
            "The run stops here."
        )


def open_channel(factory: str, host: str, port: int, rank: int, world_size: int, device: torch.device | str) -> Any:
    """The channel the factory named by its dotted path builds for this rank."""
    module, _, name = factory.rpartition(".")
    return getattr(importlib.import_module(module), name)(host, port, rank, world_size, device)


class PyNcclChannel:
    """vLLM's NCCL communicator over a ``StatelessProcessGroup`` (independent of torch.distributed's
    default group, which the learners and vLLM's workers each already use for their own ranks)."""

    def __init__(self, host: str, port: int, rank: int, world_size: int, device: torch.device | str) -> None:
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
        from vllm.distributed.utils import StatelessProcessGroup

        group = StatelessProcessGroup.create(host=host, port=port, rank=rank, world_size=world_size)
        self.communicator = PyNcclCommunicator(group, device=device)

    def broadcast(self, tensor: torch.Tensor, src: int) -> None:
        """Send ``tensor`` from rank ``src`` to every other member, in place, on the current CUDA stream."""
        self.communicator.broadcast(tensor, src=src, stream=torch.cuda.current_stream())


# ---------------------------------------------------------------------------------------------------
# The driver's side: one transport object per run


class ObjectStoreSync:
    """Rank 0's full state dict through Ray's object store; each worker fetches and loads it."""

    def __init__(self, learners: Any, pool: Any) -> None:
        self.learners, self.pool = learners, pool

    def push(self, version: int) -> None:
        """Every rollout worker loads the learners' current weights as ``version``."""
        self.pool.set_weights(self.learners.weights(), version)


class CollectiveSync:
    """Learner rank 0 broadcasts into every vLLM GPU worker over one channel (see the module docstring).

    The channel opens on the first push. A replaced rollout worker cannot join a running NCCL group:
    it loads the current weights through the object store (the pool's ``fetch_weights``), and the
    channel is opened anew, for every member, before the next push.
    """

    def __init__(self, learners: Any, pool: Any, factory: str = NCCL_CHANNEL) -> None:
        self.learners, self.pool, self.factory = learners, pool, factory
        self.specs: list[TensorSpec] = []
        self.opened_after: int | None = None  # the pool's restart count when the channel opened

    def push(self, version: int) -> None:
        """Broadcast the learners' current weights to every engine as ``version``.

        The channel is (re)opened first when it is not open yet or a rollout worker was replaced since.
        """
        if self.opened_after != sum(self.pool.restarts):
            self._open()
        wait_all(self.learners.send_weights(version) + self.pool.receive_weights(self.specs, version))

    def _open(self) -> None:
        host, port = self.learners.channel_address()
        world_size = 1 + self.pool.channel_ranks()
        opened = wait_all([self.learners.open_weight_channel(host, port, world_size, self.factory)]
                          + self.pool.open_weight_channel(host, port, world_size, self.factory))
        self.specs, self.opened_after = opened[0], sum(self.pool.restarts)


def make_sync(kind: str, learners: Any, pool: Any) -> ObjectStoreSync | CollectiveSync:
    """The weight transport ``kind`` names: ``"collective"`` (NCCL broadcast), else the object store."""
    return CollectiveSync(learners, pool) if kind == "collective" else ObjectStoreSync(learners, pool)


def wait_all(refs: Sequence[Any]) -> list[Any]:
    """The refs' values in order; the first actor that died stops the sync (its peers in the
    broadcast would wait for it for ever)."""
    from agents.training.ray.cluster import death_text, wait_in_turn

    return wait_in_turn(refs, lambda error: WeightSyncError(
        f"An actor died during the collective weight sync ({death_text(error)}); the run stops here."
    ))
