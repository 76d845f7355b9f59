"""Per-episode agent memory: a scratchpad and a store of entries searched by embedding similarity.

The store gives every entry a stable integer id that is never reused, so "Memory 2" in an action
always means one entry of *this* episode (the reference matched texts across a whole batch of
episodes, so one episode could delete another's entry). Retrieval is exact: an inner product over
unit vectors held in one contiguous matrix (laid out by entry, or by dimension for sparse
embedders: see :mod:`atommem_env.vectors`), top-k by score with ties broken by id, so the same
operations always give the same lists. The store does no I/O and holds no model: it asks its
embedder for vectors and its tokenizer for lengths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from atommem_env.embedders import Embedder
from atommem_env.errors import ConfigError, MemoryOpError
from atommem_env.tokenization import Tokenizer, truncate_tokens, within_budget
from atommem_env.vectors import Vectors, vectors_for


class MemoryEntry(NamedTuple):
    """One stored entry as returned by a search: its id, text and similarity to the query.

    A named tuple (immutable, compared by value): every turn builds one per shown entry, and a frozen
    dataclass cost about 1 us each, a tenth of a search."""

    id: int
    text: str
    score: float = 0.0


class MemoryStore:
    """Scratchpad + entry store with stable ids and exact top-k retrieval.

    Args:
        embedder: turns entry texts and queries into unit vectors.
        tokenizer: measures the scratchpad and entries.
        scratchpad_tokens: scratchpad budget; longer text is truncated (and the caller told).
        max_entry_tokens: longest entry accepted by ``create`` / ``update``.
        capacity: most entries the store may hold (``None``: unlimited, as in the paper).
    """

    def __init__(
        self,
        embedder: Embedder,
        tokenizer: Tokenizer,
        *,
        scratchpad_tokens: int = 2048,
        max_entry_tokens: int = 1024,
        capacity: int | None = None,
    ) -> None:
        if scratchpad_tokens < 0 or max_entry_tokens < 1:
            raise ConfigError(
                f"scratchpad_tokens={scratchpad_tokens}, max_entry_tokens={max_entry_tokens}: "
                "need scratchpad_tokens >= 0 and max_entry_tokens >= 1."
            )
        if capacity is not None and capacity < 0:
            raise ConfigError(f"capacity={capacity} must be None (unlimited) or >= 0.")
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.scratchpad_tokens = scratchpad_tokens
        self.max_entry_tokens = max_entry_tokens
        self.capacity = capacity
        self._prefix_counts: dict[int, int] = {}  # tokens of "Memory {rank}: \n", per rank
        self.clear()

    # ----------------------------------------------------------------------------------- lifecycle
    def clear(self) -> None:
        """Empty the scratchpad and the store and restart ids from 0 (a new episode)."""
        self.scratchpad = ""
        self._next_id = 0
        self._texts: dict[int, str] = {}
        self._row_of: dict[int, int] = {}
        self._ids = np.zeros(16, dtype=np.int64)
        self._vectors: Vectors = vectors_for(self.embedder)
        self._query_cache: tuple[str, Any] | None = None
        self.shown_ids: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self._texts)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._texts

    def get(self, entry_id: int) -> str:
        """Text of entry ``entry_id``; raises ``MemoryOpError('unknown_id')`` if there is none."""
        self._require(entry_id)
        return self._texts[entry_id]

    def find_text(self, text: str) -> int | None:
        """Id of the oldest entry whose text is exactly ``text``, or None (the reference's text lookup)."""
        return next((i for i, t in sorted(self._texts.items()) if t == text), None)

    def entries(self) -> list[MemoryEntry]:
        """All entries in id (creation) order."""
        return [MemoryEntry(i, t) for i, t in sorted(self._texts.items())]

    # ---------------------------------------------------------------------------------- scratchpad
    def write_scratchpad(self, text: str) -> bool:
        """Replace the scratchpad. Returns True when ``text`` was cut to the token budget."""
        self.scratchpad, truncated = truncate_tokens(text, self.scratchpad_tokens, self.tokenizer)
        return truncated

    # --------------------------------------------------------------------------------------- CRUD
    def create(self, text: str) -> int:
        """Store a new entry and return its id (ids are never reused)."""
        text = self._check_text(text)
        if self.capacity is not None and len(self._texts) >= self.capacity:
            raise MemoryOpError(
                "store_full",
                f"The memory store is full ({self.capacity} entries): delete or modify an entry instead.",
            )
        vector = self.embedder.embed([text])[0]
        row = len(self._texts)
        if row == len(self._ids):
            self._ids = np.resize(self._ids, 2 * row)
            self._vectors = self._vectors.grown(2 * row)
        entry_id = self._next_id
        self._next_id += 1
        self._ids[row] = entry_id
        self._vectors.append(row, vector)
        self._row_of[entry_id] = row
        self._texts[entry_id] = text
        return entry_id

    def update(self, entry_id: int, text: str) -> None:
        """Replace the text (and vector) of an entry, keeping its id."""
        self._require(entry_id)
        text = self._check_text(text)
        self._vectors.set(self._row_of[entry_id], self.embedder.embed([text])[0])
        self._texts[entry_id] = text

    def delete(self, entry_id: int) -> None:
        """Remove an entry. Its id is never given to another entry."""
        self._require(entry_id)
        row = self._row_of.pop(entry_id)
        last = len(self._texts) - 1
        if row != last:  # keep rows contiguous: move the last row into the hole
            moved = int(self._ids[last])
            self._ids[row] = moved
            self._row_of[moved] = row
        self._vectors.remove(row, last)
        del self._texts[entry_id]

    def prefetch(self, texts: Sequence[str]) -> None:
        """Embed the entry texts of one response in one call before its Creates and Updates store them
        one by one, when the embedder caches (``warm``): an embedding model then runs one batch and a
        server gets one request, instead of one per entry. Texts that will be refused are skipped."""
        warm = getattr(self.embedder, "warm", None)
        if warm is None:
            return
        valid = []
        for text in texts:
            try:
                valid.append(self._check_text(text))  # the exact string create() / update() will embed
            except MemoryOpError:
                continue  # its own operation reports the error
        if len(valid) > 1:
            warm(valid)

    # ---------------------------------------------------------------------------------- retrieval
    def search(self, query: str, k: int) -> list[MemoryEntry]:
        """Top-``k`` entries by similarity to ``query``, best first, ties broken by smaller id."""
        n = len(self._texts)
        if n == 0 or k <= 0:
            return []
        scores = self._vectors.scores(self._query_vector(query), n)
        top = top_k(scores, self._ids[:n], k)
        ids = self._ids[top].tolist()
        # map over the named tuple's class: ~1 us less per search than a comprehension calling it
        return list(map(MemoryEntry, ids, map(self._texts.__getitem__, ids), scores[top].tolist()))

    def retrieve(self, query: str, k: int, max_tokens: int | None = None) -> list[MemoryEntry]:
        """``search`` and remember the shown list, so that rank i (from 1) resolves to its entry.

        With ``max_tokens``, entries are kept while the list fits that budget; the first entry that
        does not fit is cut to what is left and later ones are dropped (and are not addressable).
        """
        shown = self.search(query, k)
        if max_tokens is not None:
            shown = self._fit(shown, max_tokens)
        self.shown_ids = tuple(e.id for e in shown)
        return shown

    def _fit(self, entries: list[MemoryEntry], max_tokens: int) -> list[MemoryEntry]:
        # Runs every turn: each entry is counted once, and the "Memory i: " prefixes once per store.
        fitted: list[MemoryEntry] = []
        left = max_tokens
        for rank, entry in enumerate(entries, start=1):
            left -= self._prefix_tokens(rank)
            if left <= 0:
                break
            n_tokens = self.tokenizer.count(entry.text)
            if n_tokens > left:
                text, _ = truncate_tokens(entry.text, left, self.tokenizer)
                fitted.append(MemoryEntry(entry.id, text, entry.score))
                break
            fitted.append(entry)
            left -= n_tokens
        return fitted

    def _prefix_tokens(self, rank: int) -> int:
        count = self._prefix_counts.get(rank)
        if count is None:
            count = self._prefix_counts[rank] = self.tokenizer.count(f"Memory {rank}: \n")
        return count

    def id_at_rank(self, rank: int) -> int:
        """Id of the entry shown as ``Memory {rank}`` in the last retrieved list."""
        if not 1 <= rank <= len(self.shown_ids):
            shown = f"Memory 1 to Memory {len(self.shown_ids)}" if self.shown_ids else "no memories"
            raise MemoryOpError(
                "unknown_rank", f"Memory {rank} is not in the current list (it shows {shown})."
            )
        entry_id = self.shown_ids[rank - 1]
        self._require(entry_id, f"Memory {rank} was deleted earlier in this response.")
        return entry_id

    # ------------------------------------------------------------------------------------ helpers
    def _query_vector(self, query: str) -> Any:
        # The query persists across turns: embed (and prepare) it once per distinct text.
        if self._query_cache is None or self._query_cache[0] != query:
            vector = self.embedder.embed([query], query=True)[0]
            self._query_cache = (query, self._vectors.prepare(vector))
        return self._query_cache[1]

    def _check_text(self, text: str) -> str:
        text = text.strip()
        if not text:
            raise MemoryOpError("empty_content", "Memory entries cannot be empty.")
        if not within_budget(text, self.max_entry_tokens, self.tokenizer):
            raise MemoryOpError(
                "entry_too_long",
                f"The entry has {self.tokenizer.count(text)} tokens; the limit is {self.max_entry_tokens}. "
                "Split it into several shorter entries.",
            )
        return text

    def _require(self, entry_id: int, message: str | None = None) -> None:
        if entry_id not in self._texts:
            raise MemoryOpError("unknown_id", message or f"No memory entry has id {entry_id}.")


#: Above this many entries a search selects the top k by partition before sorting them; below it,
#: sorting all scores is fewer numpy calls and as fast. Both give the same list.
PARTITION_ABOVE = 512


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best ``scores``, best first, equal scores by smaller id."""
    negated = -scores
    if len(scores) > max(k, PARTITION_ABOVE):  # keep every entry tied with the k-th score
        kth = np.partition(negated, k - 1)[k - 1]
        keep = np.flatnonzero(negated <= kth)
        return keep[np.lexsort((ids[keep], negated[keep]))[:k]]
    return np.lexsort((ids, negated))[:k]
