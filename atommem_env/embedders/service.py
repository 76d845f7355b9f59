"""OpenAIEmbedder: a client of an OpenAI-compatible ``/embeddings`` endpoint (the paper's vLLM setup)."""

from __future__ import annotations

import json

import numpy as np

from atommem_env.credentials import DEFAULT_API_KEY_ENV, check_base_url, key_hint, resolve_api_key
from atommem_env.embedders.base import CachingEmbedder, unit_rows
from atommem_env.errors import AtomMemError, ConfigError

#: Qwen3-Embedding's retrieval instruction, prepended to queries only (``f"{instruction}{query}"``),
#: as the reference implementation does.
QWEN3_QUERY_INSTRUCTION = (
    "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
)


class EmbeddingServiceError(AtomMemError, ConnectionError):
    """An embeddings server could not be reached or answered with an error (names the URL)."""


class OpenAIEmbedder(CachingEmbedder):
    """An OpenAI-compatible ``POST {base_url}/embeddings`` endpoint, through the standard library.

    This is the paper's setup: ``vllm serve Qwen/Qwen3-Embedding-0.6B`` with the Qwen3 retrieval
    instruction on queries only. Connections are opened per request, so the embedder pickles freely.

    Args:
        base_url: the API root, e.g. ``"http://localhost:8000/v1"``.
        model: the served model name, e.g. ``"Qwen/Qwen3-Embedding-0.6B"``.
        api_key: sent as ``Authorization: Bearer ...``; never shown in ``repr`` or messages. Leave it out
            to read the key from the environment (``api_key_env``; vLLM needs none by default).
        query_instruction: prepended to queries only, as ``f"{instruction}{query}"``; ``""`` for models
            without one.
        timeout: seconds per request.
        max_retries: extra attempts after a connection error, a timeout, HTTP 429 or 5xx.
        batch_size: texts per request.
        dim: the expected vector size; learned from the first response when ``None`` (reading ``dim``
            before any ``embed`` then sends one probe request).
        backoff: first retry delay in seconds, doubled each retry (a ``Retry-After`` header wins, up to
            60 s).
        cache_size: how many ``(query, text)`` vectors to remember per instance (0 disables).
        api_key_env: the environment variable holding the key when ``api_key`` is not given (default
            ``OPENAI_API_KEY``; unset means no key; a variable named here that is not set is an error).
            The ``"openai:<base_url>#<model>"`` spec of :func:`~atommem_env.make_embedder` uses the default.

    Raises:
        ConfigError: invalid arguments, or the server's vectors do not have size ``dim``.
        EmbeddingServiceError: on ``embed``, when the server stays unreachable or answers an error.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        query_instruction: str = QWEN3_QUERY_INSTRUCTION,
        timeout: float = 30.0,
        max_retries: int = 3,
        batch_size: int = 64,
        *,
        dim: int | None = None,
        backoff: float = 0.5,
        cache_size: int = 4096,
        api_key_env: str = DEFAULT_API_KEY_ENV,
    ) -> None:
        self.base_url = check_base_url(base_url, "OpenAIEmbedder base_url")
        if not model:
            raise ConfigError("OpenAIEmbedder model='' : pass the served model name, e.g. 'Qwen/Qwen3-Embedding-0.6B'.")
        if timeout <= 0 or max_retries < 0 or batch_size < 1 or backoff < 0 or cache_size < 0:
            raise ConfigError(
                f"OpenAIEmbedder timeout={timeout}, max_retries={max_retries}, batch_size={batch_size}, "
                f"backoff={backoff}, cache_size={cache_size}: need timeout > 0, batch_size >= 1 and the "
                "others >= 0."
            )
        if dim is not None and dim < 1:
            raise ConfigError(f"OpenAIEmbedder dim={dim}: pass a positive size or None to learn it.")
        self.url = f"{self.base_url}/embeddings"
        self.model = model
        self.api_key_env = api_key_env
        self._api_key = resolve_api_key(api_key, api_key_env, "OpenAIEmbedder")
        self.query_instruction = query_instruction
        self.timeout = timeout
        self.max_retries = max_retries
        self.batch_size = batch_size
        self.backoff = backoff
        self.cache_size = cache_size
        self.name = f"openai:{model}"
        self._dim = dim
        self._init_cache()

    def _learn_dim(self) -> None:
        self._request(["dimension probe"])  # the response sets _dim

    def _embed_new(self, texts: list[str], query: bool) -> np.ndarray:
        inputs = [f"{self.query_instruction}{t}" for t in texts] if query else texts
        parts = [self._request(inputs[i : i + self.batch_size]) for i in range(0, len(inputs), self.batch_size)]
        return unit_rows(np.concatenate(parts, axis=0))

    def _request(self, batch: list[str]) -> np.ndarray:
        # Imported here: urllib.request (http.client, ssl) costs every `import atommem_env` ~20 ms otherwise.
        from atommem_env.http import post_json

        raw = post_json(
            self.url,
            {"model": self.model, "input": batch, "encoding_format": "float"},
            api_key=self._api_key, timeout=self.timeout, max_retries=self.max_retries, backoff=self.backoff,
            error=EmbeddingServiceError,
            request_hint=f"Check model={self.model!r}, the API key ({key_hint(self._api_key, self.api_key_env)}) "
            "and that base_url points at an OpenAI-compatible API root (ending in /v1).",
            server_hint=f"Is the embeddings server running (e.g. vllm serve {self.model}) and is "
            f"base_url={self.base_url!r} right?",
        )
        return self._parse(raw, len(batch))

    def _parse(self, raw: bytes, expected: int) -> np.ndarray:
        try:
            items = sorted(json.loads(raw)["data"], key=lambda item: item["index"])
            vectors = np.asarray([item["embedding"] for item in items], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingServiceError(
                f"POST {self.url} answered something that is not an OpenAI embeddings response "
                f"({type(exc).__name__}: {exc}); first bytes: {raw[:200]!r}."
            ) from exc
        if vectors.ndim != 2 or len(vectors) != expected or not np.isfinite(vectors).all():
            raise EmbeddingServiceError(
                f"POST {self.url} returned {vectors.shape} vectors for {expected} inputs (or non-finite values)."
            )
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise ConfigError(
                f"OpenAIEmbedder: {self.url} returned {vectors.shape[1]}-d vectors but dim={self._dim}. "
                "Pass the served model's size as dim (Qwen3-Embedding-0.6B: 1024) or dim=None."
            )
        return vectors

    def __repr__(self) -> str:
        # Never show the api_key.
        return f"OpenAIEmbedder(base_url={self.base_url!r}, model={self.model!r}, dim={self._dim})"
