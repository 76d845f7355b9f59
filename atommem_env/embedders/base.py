"""What every embedder shares: the :class:`Embedder` protocol and the caching base of model-backed ones."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from atommem_env.errors import AtomMemError, ConfigError


@runtime_checkable
class Embedder(Protocol):
    """What the memory store needs of an embedder.

    An embedder whose vectors have few non-zeros may also set ``sparse = True``: the store then
    keeps its vectors by dimension and reads only the query's non-zero ones (:mod:`atommem_env.vectors`).
    One that caches may offer ``warm(texts)``: the store then embeds a response's entries in one call
    before storing them one by one (:meth:`~atommem_env.memory.MemoryStore.prefetch`).
    """

    name: str

    # Read-only, so that model-backed embedders can learn their size lazily (a property).
    @property
    def dim(self) -> int:
        """Vector size."""
        ...

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 array with unit-norm rows (zero rows for empty text)."""
        ...


def require_text_list(texts: Sequence[str]) -> None:
    """Raise :class:`ConfigError` for a bare string.

    A string is a sequence too, and embedding it character by character is never what was meant.
    """
    if isinstance(texts, str):
        raise ConfigError(
            f"embed() takes a sequence of texts, got the single string {texts[:40]!r}; wrap it in a list."
        )


def unit_rows(vectors: Any) -> np.ndarray:
    """``vectors`` as a float32 2-D array with L2-normalized rows (zero rows stay zero)."""
    out = np.array(vectors, dtype=np.float32, ndmin=2, copy=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


class CachingEmbedder:
    """Shared ``embed`` for model-backed embedders: blank texts → zero rows, an LRU cache, dedup.

    Memory entries and the persistent query are re-embedded on every turn, so a small per-instance
    cache of ``(query, text) → vector`` saves most model calls. Subclasses implement ``_embed_new``
    (unit rows for non-blank texts) and ``dim``.
    """

    cache_size: int
    _dim: int | None

    @property
    def dim(self) -> int:
        """Vector size: given, or learned on first read (``_learn_dim``: load the model, ask the server)."""
        if self._dim is None:
            self._learn_dim()
        if self._dim is None:
            raise AtomMemError(f"{type(self).__name__} could not learn its vector size.")
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:
        self._dim = value

    def _learn_dim(self) -> None:
        raise NotImplementedError

    def _init_cache(self) -> None:
        self._cache: OrderedDict[tuple[bool, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _embed_new(self, texts: list[str], query: bool) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 array with unit-norm rows (zero rows for blank text)."""
        require_text_list(texts)
        rows: dict[int, np.ndarray] = {}
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                if not text.strip():
                    continue  # blank text carries no meaning: a zero row never matches anything
                cached = self._cache.get((query, text))
                if cached is not None:
                    self._cache.move_to_end((query, text))
                    rows[i] = cached
                else:
                    todo.setdefault(text, []).append(i)
        if todo:
            fresh = self._embed_new(list(todo), query)
            with self._lock:
                for (text, indices), vector in zip(todo.items(), fresh, strict=True):
                    vector = vector.copy()  # own row: a cached view would pin its whole batch
                    vector.setflags(write=False)  # shared by the cache and later calls
                    for i in indices:
                        rows[i] = vector
                    if self.cache_size > 0:
                        self._cache[(query, text)] = vector
                        if len(self._cache) > self.cache_size:
                            self._cache.popitem(last=False)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, vector in rows.items():
            out[i] = vector
        return out

    def warm(self, texts: Sequence[str], *, query: bool = False) -> None:
        """Embed those of ``texts`` not cached yet in one call (one batch through a model, one request
        to a server), so that the one-text calls that follow are served from the cache."""
        if self.cache_size > 0:
            self.embed(texts, query=query)

    def clear_cache(self) -> None:
        """Forget every cached vector (e.g. after the served model changed)."""
        with self._lock:
            self._cache.clear()

    # Attributes that never travel in a pickle: the cache (a speed-up), the lock (unpicklable) and,
    # in subclasses, loaded models.
    _TRANSIENT: tuple[str, ...] = ("_cache", "_lock")

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for attr in self._TRANSIENT:
            setattr(self, attr, None)
        self._init_cache()
