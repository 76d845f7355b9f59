"""The observation space, and how ``AsyncVectorEnv`` shares its observations between processes.

gymnasium's ``AsyncVectorEnv`` defaults to ``shared_memory=True``: each worker writes its observation
into a fixed-size buffer created from the observation space, and the parent reads the batch from it.
Our observations are text of no fixed size (prompts, chunks, lists of retrieved entries), so no
fixed-size buffer can hold them, and gymnasium's own text buffers would cut them (``Text`` is bounded
by ``max_length``; ``Sequence`` refuses shared memory outright). Without support registered here,
``gym.make_vec(id, n, vectorization_mode="async")`` fails unless the user knows to pass
``vector_kwargs={"shared_memory": False}``.

:class:`ObservationSpace` (a ``gymnasium.spaces.Dict``; nothing else changes for wrappers, checkers
or RLlib) registers gymnasium's three shared-memory functions: the "shared memory" of a batch of
``n`` envs is one slot per env in a list held by a ``multiprocessing`` manager (a small server
process that lives as long as the vector env's buffer); a worker writes its whole observation into
its slot in one call, and the parent reads every slot in one call and batches them with gymnasium's
own ``concatenate``, so the batch equals what ``SyncVectorEnv`` and ``shared_memory=False`` give.
With the default ``copy=True`` the vector env hands out that plain batch; with ``copy=False`` it hands
out the live view (:class:`SharedObservations`), which reads the slots again on each access, as
gymnasium's numpy buffers change under a ``copy=False`` user.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Mapping
from typing import Any

from gymnasium import spaces
from gymnasium.vector.utils import concatenate, create_empty_array
from gymnasium.vector.utils.shared_memory import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)


class ObservationSpace(spaces.Dict):
    """The observation Dict of every AtomMem env; shares across processes through manager slots."""


class SharedObservations(Mapping[str, Any]):
    """The batched observations of ``n`` envs, read from their slots whenever they are looked at.

    ``copy.deepcopy`` (what ``AsyncVectorEnv`` applies with ``copy=True``) returns the plain batched
    dict of this moment, so the user never holds a view unless they asked for ``copy=False``.
    """

    def __init__(self, space: ObservationSpace, slots: Any, n: int) -> None:
        self._space, self._slots, self._n = space, slots, n

    def snapshot(self) -> dict[str, Any]:
        """The batch as ``SyncVectorEnv`` would return it (one read of all slots)."""
        items = list(self._slots)
        batch = create_empty_array(self._space, n=self._n)
        if all(item is not None for item in items):  # else: before the first reset, gymnasium's empty batch
            batch = concatenate(self._space, items, batch)
        return dict(batch)  # a Dict space batches to a dict

    def __getitem__(self, key: str) -> Any:
        return self.snapshot()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._space.spaces)

    def __len__(self) -> int:
        return len(self._space.spaces)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return self.snapshot()

    def __repr__(self) -> str:
        return f"SharedObservations(n={self._n}, keys={list(self)})"


@create_shared_memory.register(ObservationSpace)
def _create_slots(space: ObservationSpace, n: int = 1, ctx: Any = multiprocessing) -> Any:
    # The list proxy keeps its manager alive in this process; workers get the proxy (picklable when
    # a process is started), never the manager.
    manager = ctx.Manager()
    return manager.list([None] * n)


@read_from_shared_memory.register(ObservationSpace)
def _read_slots(space: ObservationSpace, shared_memory: Any, n: int = 1) -> SharedObservations:
    return SharedObservations(space, shared_memory, n)


@write_to_shared_memory.register(ObservationSpace)
def _write_slot(space: ObservationSpace, index: int, values: dict[str, Any], shared_memory: Any) -> None:
    shared_memory[index] = dict(values)
