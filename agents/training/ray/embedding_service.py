"""One embedding model per node, shared by every env of the node's rollout workers.

An env with a model embedder (``embedder="minilm"`` or ``"st:NAME"``) would load that model once per
env: 16 envs in each of 4 workers is 64 copies. Instead, one :class:`EmbeddingService` Ray actor per
node loads it once, and the envs get an :class:`ServiceEmbedder`, a client with the
:class:`atommem_env.embedders.Embedder` interface that sends ``embed`` calls to it (and caches). Hashing embedders
hold no model and stay in the envs; ``openai:`` embedders already share a server.

    service = ray.remote(EmbeddingService).remote("minilm")
    env = gym.make("AtomMem-Synthetic-v0", embedder=ServiceEmbedder.connect(service))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from atommem_env.embedders import CachingEmbedder, make_embedder


def needs_service(spec: Any) -> bool:
    """Whether the env embedder ``spec`` loads a model (and so should be shared per node)."""
    return isinstance(spec, str) and (spec == "minilm" or spec.startswith("st:"))


class EmbeddingService:
    """The actor: one embedder built from ``spec`` (see :func:`atommem_env.embedders.make_embedder`)."""

    def __init__(self, spec: Any, torch_threads: int = 1) -> None:
        _one_torch_thread(torch_threads)
        self.embedder = make_embedder(spec)

    def describe(self) -> dict[str, Any]:
        """The embedder's ``name``, ``dim`` and ``sparse`` (reading ``dim`` may load the model: done once, here)."""
        return {"name": self.embedder.name, "dim": int(self.embedder.dim),
                "sparse": bool(getattr(self.embedder, "sparse", False))}

    def embed(self, texts: list[str], query: bool = False) -> np.ndarray:
        """The embedder's vectors of ``texts`` (``query`` marks search queries, for models that prefix them)."""
        return self.embedder.embed(texts, query=query)


class ServiceEmbedder(CachingEmbedder):
    """An :class:`~atommem_env.embedders.Embedder` whose vectors come from an :class:`EmbeddingService`.

    Like the other model embedders it remembers ``cache_size`` vectors and offers ``warm``, so an env
    sends a response's entries to the service in one call rather than one round trip per entry. It
    pickles with its actor handle (the cache stays behind), so envs that carry it can still be pickled
    mid-episode.
    """

    def __init__(self, service: Any, name: str, dim: int, cache_size: int = 1024, sparse: bool = False) -> None:
        self.service, self.name, self.dim, self.cache_size = service, name, dim, cache_size
        self.sparse = sparse  # the service's vectors, laid out as its own embedder's would be
        self._init_cache()

    @classmethod
    def connect(cls, service: Any) -> ServiceEmbedder:
        """A client for ``service`` (an actor handle), with its name and size asked once."""
        import ray

        info = ray.get(service.describe.remote())
        return cls(service, info["name"], info["dim"], sparse=info["sparse"])

    def _embed_new(self, texts: list[str], query: bool) -> np.ndarray:
        import ray

        return ray.get(self.service.embed.remote(texts, query))

    def __repr__(self) -> str:
        return f"ServiceEmbedder(name={self.name!r}, dim={self.dim})"


def _one_torch_thread(threads: int) -> None:
    """Many actors share a node's cores: more torch threads per actor only add contention."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)
