"""One embedding model per node, shared by every env of the node's rollout workers.

An env with a model embedder (``embedder="minilm"`` or ``"st:NAME"``) would load that model once per
env: 16 envs in each of 4 workers is 64 copies. Instead, one :class:`EmbeddingService` Ray actor per
node loads it once, and the envs get an :class:`ServiceEmbedder`, a thin client with the
:class:`atommem_env.embedders.Embedder` interface that sends ``embed`` calls to it. Hashing embedders
hold no model and stay in the envs; ``openai:`` embedders already share a server.

    service = ray.remote(EmbeddingService).remote("minilm")
    env = gym.make("AtomMem-Synthetic-v0", embedder=ServiceEmbedder.connect(service))
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from atommem_env.embedders import _require_text_list, make_embedder


def needs_service(spec: Any) -> bool:
    """Whether the env embedder ``spec`` loads a model (and so should be shared per node)."""
    return isinstance(spec, str) and (spec == "minilm" or spec.startswith("st:"))


class EmbeddingService:
    """The actor: one embedder built from ``spec`` (see :func:`atommem_env.embedders.make_embedder`)."""

    def __init__(self, spec: Any, torch_threads: int = 1) -> None:
        _one_torch_thread(torch_threads)
        self.embedder = make_embedder(spec)

    def describe(self) -> dict[str, Any]:
        """The embedder's ``name`` and ``dim`` (reading ``dim`` may load the model: done once, here)."""
        return {"name": self.embedder.name, "dim": int(self.embedder.dim)}

    def embed(self, texts: list[str], query: bool = False) -> np.ndarray:
        return self.embedder.embed(texts, query=query)


class ServiceEmbedder:
    """An :class:`~atommem_env.embedders.Embedder` whose vectors come from an :class:`EmbeddingService`.

    It pickles with its actor handle, so envs that carry it can still be pickled mid-episode.
    """

    def __init__(self, service: Any, name: str, dim: int) -> None:
        self.service, self.name, self.dim = service, name, dim

    @classmethod
    def connect(cls, service: Any) -> "ServiceEmbedder":
        """A client for ``service`` (an actor handle), with its name and size asked once."""
        import ray

        info = ray.get(service.describe.remote())
        return cls(service, info["name"], info["dim"])

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        import ray

        _require_text_list(texts)
        return ray.get(self.service.embed.remote(list(texts), query))

    def __repr__(self) -> str:
        return f"ServiceEmbedder(name={self.name!r}, dim={self.dim})"


def _one_torch_thread(threads: int) -> None:
    """Many actors share a node's cores: more torch threads per actor only add contention."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)
