"""A memory-operation trace of a GRPO batch, and a player that runs it through any batch store.

The trace is what the paper's training batch does to memory: ``episodes`` rollouts (8 prompts x 8),
``turns`` reading turns each; every turn, every episode retrieves with its current query, then its
response updates an entry (30% of turns), deletes one (3%) and creates about 4 (Poisson), the late-RL
operation counts of SPEC §9. The query changes in 30% of turns (the paper's Read rate is 0.25-0.44);
the reference embeds it every turn regardless. Entry texts are synthetic documents (one fact
each, about 40 tokens) and all distinct, so a store that finds entries by text (the reference) and one
that finds them by id (ours) do the same logical work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from atommem_env.datasets.synthetic import SyntheticSource
from atommem_env.embedders import Embedder

OPS = ("retrieve", "create", "update", "delete")


@dataclass(frozen=True)
class TraceConfig:
    episodes: int = 64
    turns: int = 30
    creates: float = 4.0  # mean Creates per episode per turn (Poisson)
    updates: float = 0.3  # probability of an Update per episode per turn
    deletes: float = 0.03  # probability of a Delete per episode per turn
    query_changes: float = 0.3  # probability that the query changes in a turn
    top_k: int = 6
    seed: int = 0


@dataclass(frozen=True)
class Turn:
    """One episode's turn: retrieve with ``query``, then update / delete by rank, then create."""

    query: str
    creates: tuple[str, ...]
    update: tuple[int, str] | None = None  # (rank in the retrieved list, new text)
    delete: int | None = None  # rank in the retrieved list


def make_trace(config: TraceConfig) -> list[list[Turn]]:
    """``trace[t][e]`` is episode ``e``'s turn ``t``; the same config always gives the same trace."""
    rng = np.random.default_rng(config.seed)
    shape = (config.turns, config.episodes)
    n_creates = rng.poisson(config.creates, size=shape)
    has_update = rng.random(shape) < config.updates
    has_delete = rng.random(shape) < config.deletes
    new_query = rng.random(shape) < config.query_changes
    new_query[0] = True
    texts = iter(entry_texts(int(n_creates.sum() + has_update.sum()), config.seed))
    queries = entry_texts(int(new_query.sum()), config.seed + 1)
    query_iter = (" ".join(text.split()[-12:]) for text in queries)  # keywords of one fact
    current = [""] * config.episodes
    trace = []
    for t in range(config.turns):
        row = []
        for e in range(config.episodes):
            if new_query[t, e]:
                current[e] = next(query_iter)
            update = (int(rng.integers(1, config.top_k + 1)), next(texts)) if has_update[t, e] else None
            delete = int(rng.integers(1, config.top_k + 1)) if has_delete[t, e] else None
            creates = tuple(next(texts) for _ in range(n_creates[t, e]))
            row.append(Turn(current[e], creates, update, delete))
        trace.append(row)
    return trace


def entry_texts(count: int, seed: int) -> list[str]:
    """``count`` distinct entry texts: the documents of one synthetic episode."""
    source = SyntheticSource(num_documents=max(count, 40), num_episodes=1, seed_salt=1000 + seed)
    return list(source.episode(0, np.random.default_rng(seed)).documents[:count])


def resolve_ranks(update: int | None, delete: int | None, shown: int) -> tuple[int | None, int | None]:
    """Map the trace's ranks onto a list of ``shown`` entries; an Update and a Delete never share one.

    Both stores see the same list, so they skip or redirect the same operations.
    """
    if shown == 0:
        return None, None
    u = None if update is None else 1 + (update - 1) % shown
    d = None if delete is None else 1 + (delete - 1) % shown
    if u is not None and d == u:
        d = None if shown == 1 else 1 + d % shown
    return u, d


class BatchStore(Protocol):
    """The memory of a batch of episodes, addressed by episode and by rank in the last retrieved list."""

    def retrieve(self, episode: int, query: str, k: int) -> list[str]: ...
    def create(self, episode: int, text: str) -> None: ...
    def update(self, episode: int, rank: int, text: str) -> None: ...
    def delete(self, episode: int, rank: int) -> None: ...
    def size(self) -> int: ...


class EmbedClock:
    """An embedder that adds up the CPU time of its ``embed`` calls, so that a store's own work can be
    told apart from the embedding both designs pay alike."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.sparse = getattr(inner, "sparse", False)
        self.cpu = 0.0

    def embed(self, texts: Any, *, query: bool = False) -> Any:
        start = time.process_time()
        try:
            return self.inner.embed(texts, query=query)
        finally:
            self.cpu += time.process_time() - start


@dataclass
class PlayResult:
    """Per-operation wall and CPU seconds, each retrieval's query and list, and the store size then.

    CPU time (``time.process_time``: every thread of the process, no time spent waiting for a core)
    estimates what a dedicated machine would show when this one is shared; wall time includes the waits.
    ``embed_cpu_seconds``: the part of each operation's CPU time spent in the embedder (with a clock).
    """

    seconds: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    cpu_seconds: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    embed_cpu_seconds: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    queries: list[str] = field(default_factory=list)
    retrieved: list[list[str]] = field(default_factory=list)
    size_at_retrieve: list[int] = field(default_factory=list)
    clock: EmbedClock | None = None

    def timed(self, op: str, call: Callable[..., Any], *args: Any) -> Any:
        embed_cpu = self.clock.cpu if self.clock else 0.0
        wall, cpu = time.perf_counter(), time.process_time()
        out = call(*args)
        self.seconds[op].append(time.perf_counter() - wall)
        self.cpu_seconds[op].append(time.process_time() - cpu)
        self.embed_cpu_seconds[op].append(self.clock.cpu - embed_cpu if self.clock else 0.0)
        return out

    def store_cpu_seconds(self) -> dict[str, list[float]]:
        """Each operation's CPU time without its embedding: the store's own work."""
        return {op: [t - e for t, e in zip(self.cpu_seconds[op], self.embed_cpu_seconds[op], strict=True)]
                for op in OPS}


def play(store: BatchStore, trace: list[list[Turn]], top_k: int = 6, clock: EmbedClock | None = None) -> PlayResult:
    """Run ``trace`` through ``store`` turn by turn, as the reference's rollout loop does: first every
    episode's observation (a retrieval), then every episode's response. ``clock``: the store's embedder,
    wrapped, to split embedding time out of each operation's CPU time."""
    result = PlayResult(clock=clock)
    for row in trace:
        shown = []
        for episode, turn in enumerate(row):
            result.size_at_retrieve.append(store.size())
            texts = result.timed("retrieve", store.retrieve, episode, turn.query, top_k)
            result.queries.append(turn.query)
            result.retrieved.append(texts)
            shown.append(len(texts))
        for episode, turn in enumerate(row):
            _respond(store, episode, turn, shown[episode], result)
    return result


def _respond(store: BatchStore, episode: int, turn: Turn, shown: int, result: PlayResult) -> None:
    update, delete = resolve_ranks(turn.update[0] if turn.update else None, turn.delete, shown)
    if update is not None:
        result.timed("update", store.update, episode, update, turn.update[1])
    if delete is not None:
        result.timed("delete", store.delete, episode, delete)
    for text in turn.creates:
        result.timed("create", store.create, episode, text)


def count_mismatches(a: PlayResult, b: PlayResult, embedder: Embedder, tolerance: float = 1e-4) -> int:
    """How many retrievals showed lists with different similarity scores (best first).

    Scores, not texts: entries tied on score (often at 0 with a hashing embedder) may be listed in any
    order, and FAISS orders ties differently from MemoryStore's smaller-id-first rule.
    """
    mismatches = 0
    for query, texts_a, texts_b in zip(a.queries, a.retrieved, b.retrieved, strict=True):
        q = embedder.embed([query], query=True)[0]
        scores = [embedder.embed(texts).dot(q) if texts else np.zeros(0) for texts in (texts_a, texts_b)]
        same = len(scores[0]) == len(scores[1]) and np.allclose(scores[0], scores[1], atol=tolerance)
        mismatches += not same
    return mismatches
