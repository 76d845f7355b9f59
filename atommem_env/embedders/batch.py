"""TurnCache: one embedder shared by a batch of envs, holding the vectors of the turn being stepped.

A memory store embeds one text per call (a Create's entry, a new query). Stepping a batch of envs
one after another makes that one call per text of every env; embedding them all first, in one call
per kind (entries, queries), costs about half as much with the hashing embedder (docs/PERFORMANCE.md,
"Embedding a batch of envs together") and is one request instead of dozens for a served model.
:class:`atommem_env.batch_embedding.BatchEmbedding` gives the envs of a batch one ``TurnCache``;
before each turn :meth:`TurnCache.hold` embeds the texts the envs announced, and each env's store
then finds its vectors here. Texts nobody announced are embedded on the spot, as without the cache.

The vectors held are the embedder's own, so an env's results are those of stepping it alone as long
as the embedder gives each text the same row whatever it is embedded with: bit for bit for
:class:`~atommem_env.embedders.HashingEmbedder`; a neural model pads a batch, which moves the last
bits of some rows (as its per-response ``warm`` already did).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from atommem_env.embedders.base import Embedder, require_text_list


class TurnCache:
    """An :class:`~atommem_env.embedders.Embedder` around ``base`` that serves the vectors of one turn.

    Args:
        base: the embedder whose vectors are served (it does all the embedding).
    """

    def __init__(self, base: Embedder) -> None:
        self.base = base
        self.name = base.name
        self.sparse = bool(getattr(base, "sparse", False))  # the store lays its vectors out as base's
        self._held: dict[tuple[bool, str], np.ndarray] = {}

    @property
    def dim(self) -> int:
        """The base embedder's vector size."""
        return self.base.dim

    def hold(self, entries: Sequence[str], queries: Sequence[str]) -> None:
        """Forget the last turn's vectors and embed this turn's: ``entries`` in one call, ``queries``
        (embedded with ``query=True``) in another."""
        self._held = {}
        self.warm(entries)
        self.warm(queries, query=True)

    def warm(self, texts: Sequence[str], *, query: bool = False) -> None:
        """Embed those of ``texts`` not held yet in one call and hold them until the next :meth:`hold`
        (a store's ``prefetch`` of one response's entries lands here)."""
        require_text_list(texts)
        new = list(dict.fromkeys(t for t in texts if (query, t) not in self._held))
        if new:
            for text, vector in zip(new, self.base.embed(new, query=query), strict=True):
                self._held[(query, text)] = vector

    def release(self) -> None:
        """Forget every held vector (the batch is done)."""
        self._held = {}

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """The held rows of ``texts``; those not held are embedded together in one call to ``base``."""
        require_text_list(texts)
        if len(texts) == 1:  # a store's call (a Create, a new query): the common case, kept short
            row = self._held.get((query, texts[0]))
            if row is not None:
                return row[np.newaxis].copy()
        held = [self._held.get((query, text)) for text in texts]
        missing = [text for text, row in zip(texts, held, strict=True) if row is None]
        if len(missing) == len(texts):
            return self.base.embed(texts, query=query)
        fresh = iter(self.base.embed(missing, query=query) if missing else ())
        return np.stack([row if row is not None else next(fresh) for row in held])  # the caller's own array

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_held": {}}  # held vectors are one turn's speed-up: never pickled

    def __repr__(self) -> str:
        return f"TurnCache({self.base!r})"
