"""Stepping a batch of envs with one embedding call per turn instead of one per text.

    batch = BatchEmbedding(envs)              # envs with equal embedders now share one TurnCache
    batch.prefetch({i: action_i, ...})        # before stepping them: embed what every step will embed
    for i, action in ...: envs[i].step(action)
    batch.release()                           # when the batch is done

Each env announces the texts its step will embed (:meth:`MemoryQAEnv.embedding_requests
<atommem_env.env.MemoryQAEnv.embedding_requests>`); the texts of all envs that share an embedder go
to it in one call per kind (entries, queries), and every store then finds its vectors in the shared
:class:`~atommem_env.embedders.batch.TurnCache`. Envs without ``embedding_requests`` (the MemAgent
baseline, other gymnasium envs) step as they are. An env's results are those of stepping it alone
when its embedder gives a text the same row whatever it is embedded with (bit for bit with the hashing
embedder; see :mod:`atommem_env.embedders.batch`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from atommem_env.embedders.batch import TurnCache


class BatchEmbedding:
    """The envs of a batch, their embedders shared: equal embedders (e.g. every ``"hashing"`` env of a
    rollout) become one :class:`TurnCache`, an embedder object several envs hold stays one.

    Args:
        envs: the batch (gymnasium envs, wrapped or not); prefetch addresses them by position.
    """

    def __init__(self, envs: Sequence[Any]) -> None:
        caches: dict[Any, TurnCache] = {}
        self._members: dict[int, tuple[Any, TurnCache]] = {}
        for i, env in enumerate(envs):
            core = env.unwrapped
            if not hasattr(core, "embedding_requests"):
                continue
            base = core.embedder.base if isinstance(core.embedder, TurnCache) else core.embedder
            key = _group_key(base)
            cache = caches.get(key)
            if cache is None:
                cache = caches[key] = TurnCache(base)
            core.use_embedder(cache)
            self._members[i] = (core, cache)

    def prefetch(self, actions: Mapping[int, Any]) -> None:
        """Embed what stepping env ``i`` with ``actions[i]`` will embed, for every ``i``: one call per
        shared embedder and kind. Call it right before those steps, with the very action objects."""
        texts: dict[int, tuple[TurnCache, list[str], list[str]]] = {}
        for i, action in actions.items():
            member = self._members.get(i)
            if member is None:
                continue
            core, cache = member
            entries, queries = core.embedding_requests(action)
            _, all_entries, all_queries = texts.setdefault(id(cache), (cache, [], []))
            all_entries += entries
            all_queries += queries
        for cache, entries, queries in texts.values():
            cache.hold(entries, queries)

    def release(self) -> None:
        """Forget the vectors held for the last turn (the envs keep their shared embedders)."""
        for _, cache in self._members.values():
            cache.release()


def _group_key(embedder: Any) -> Any:
    """Embedders that compare equal give the same vectors (``HashingEmbedder`` with the same settings);
    any other embedder is shared only with the envs that hold the very same object."""
    try:
        hash(embedder)
    except TypeError:
        return id(embedder)
    return embedder
