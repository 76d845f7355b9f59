"""A weight channel over gloo, standing in for vLLM's NCCL communicator so that the collective weight
sync protocol (agents/training/ray/weight_sync.py) runs between CPU processes in tests.

Like vLLM's ``StatelessProcessGroup``, it is a process group of its own (a TCP store at rank 0's
address), independent of torch.distributed's default group.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

TIMEOUT = timedelta(seconds=120)  # a protocol bug fails the test instead of hanging it


class GlooChannel:
    def __init__(self, host: str, port: int, rank: int, world_size: int, device: Any) -> None:
        import torch.distributed as dist

        store = dist.TCPStore(host, port, world_size, is_master=rank == 0, timeout=TIMEOUT)
        self.group = dist.ProcessGroupGloo(store, rank, world_size, TIMEOUT)

    def broadcast(self, tensor: Any, src: int) -> None:
        import torch.distributed as dist

        options = dist.BroadcastOptions()
        options.rootRank = src
        self.group.broadcast([tensor], options).wait()
