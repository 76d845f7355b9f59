"""Hand a step's episodes to rollout workers as they free up, and count each episode exactly once.

    dispatcher = Dispatcher(specs, chunk_size=16)
    chunk = dispatcher.next_chunk(worker=0)          # give worker 0 its next chunk (None: nothing left)
    dispatcher.complete(0, chunk, trajectories)      # False for a late duplicate, which is dropped
    dispatcher.worker_lost(1)                        # a dead worker's unfinished chunks go back in line
    trajectories = dispatcher.results()              # once dispatcher.done, in episode order

Episodes travel in chunks of ``chunk_size`` (a worker steps a chunk's envs together, one batched
generation per turn). A worker gets its next chunk as soon as it returns one, so a slow chunk holds
up only its own worker (no lock-step across workers). Chunks are cut the same way on every run and
each carries its own number, from which the worker seeds its sampler: which worker ran a chunk, and
in which order, does not change what it produces. That is what makes a re-run chunk (after a worker
died) and a resumed run give the same episodes.

Plain Python: the Ray driver loop in ``agents/training/ray/workers.py`` uses it, and the tests drive it
directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from agents.training.rollout import Trajectory


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to play: its place in the step, reset seed and pinned episode index."""

    uid: int
    seed: int
    index: int | None = None


@dataclass(frozen=True)
class Chunk:
    """Episodes a worker plays together; ``number`` is the chunk's place in the step."""

    number: int
    specs: tuple[EpisodeSpec, ...]


class Dispatcher:
    """The bookkeeping of one round of episodes (see the module docstring).

    Args:
        specs: the episodes; their ``uid`` values must be distinct.
        chunk_size: episodes per chunk (the last chunk may be smaller).
    """

    def __init__(self, specs: Sequence[EpisodeSpec], chunk_size: int) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size={chunk_size}: a chunk holds at least one episode.")
        uids = [s.uid for s in specs]
        if len(set(uids)) != len(uids):
            raise ValueError("Dispatcher got episodes with repeated uids; give every episode its own uid.")
        chunks = [Chunk(n, tuple(specs[i:i + chunk_size])) for n, i in enumerate(range(0, len(specs), chunk_size))]
        self._queue: deque[Chunk] = deque(chunks)
        self._in_flight: dict[Hashable, dict[int, Chunk]] = {}
        self._done: dict[int, list[Trajectory]] = {}
        self._total = len(chunks)
        self.requeued = 0
        self.duplicates = 0

    @property
    def done(self) -> bool:
        """Whether every chunk has been completed once."""
        return len(self._done) == self._total

    def next_chunk(self, worker: Hashable) -> Chunk | None:
        """The next chunk for ``worker`` (recorded as in flight there), or ``None`` when none is waiting."""
        if not self._queue:
            return None
        chunk = self._queue.popleft()
        self._in_flight.setdefault(worker, {})[chunk.number] = chunk
        return chunk

    def complete(self, worker: Hashable, chunk: Chunk, trajectories: Sequence[Trajectory]) -> bool:
        """Record ``worker``'s result for ``chunk``; returns False (and keeps nothing) for a duplicate.

        A chunk can come back twice when a worker was given up for dead, its chunk re-run elsewhere,
        and its result arrived after all: the first result counts, the later one is dropped.

        Raises:
            ValueError: the result does not hold exactly one trajectory per episode of the chunk.
        """
        self._in_flight.get(worker, {}).pop(chunk.number, None)
        if chunk.number in self._done:
            self.duplicates += 1
            return False
        if len(trajectories) != len(chunk.specs):
            raise ValueError(
                f"Chunk {chunk.number} came back with {len(trajectories)} trajectories for {len(chunk.specs)} "
                "episodes; a rollout worker must return one trajectory per episode."
            )
        for chunk_item in self._queue:  # a lost worker's copy may still be waiting: it is not needed now
            if chunk_item.number == chunk.number:
                self._queue.remove(chunk_item)
                break
        self._done[chunk.number] = list(trajectories)
        return True

    def worker_lost(self, worker: Hashable) -> list[Chunk]:
        """Put ``worker``'s unfinished chunks back at the front of the line; returns them."""
        lost = sorted(self._in_flight.pop(worker, {}).values(), key=lambda c: c.number)
        lost = [c for c in lost if c.number not in self._done]
        self._queue.extendleft(reversed(lost))
        self.requeued += len(lost)
        return lost

    def in_flight(self, worker: Hashable) -> list[Chunk]:
        """The chunks ``worker`` holds now."""
        return list(self._in_flight.get(worker, {}).values())

    def results(self) -> list[Trajectory]:
        """Every episode's trajectory, in the order of the specs.

        Raises:
            RuntimeError: called before every chunk is done.
        """
        if not self.done:
            raise RuntimeError(f"{self._total - len(self._done)} of {self._total} chunks are not done yet.")
        return [t for number in sorted(self._done) for t in self._done[number]]
