"""Text embedders behind one small protocol.

An embedder maps texts to L2-normalized float32 vectors, so that the inner product is the cosine
similarity. ``query=True`` marks retrieval queries: instruction-tuned embedders (Qwen3-Embedding, as
in the paper) prepend their query instruction to those only.

The default, :class:`HashingEmbedder`, needs only numpy and is deterministic across processes and
machines (it hashes with CRC32, never Python's salted ``hash``).
"""

from __future__ import annotations

import re
import zlib
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from atommem_env.errors import ConfigError


@runtime_checkable
class Embedder(Protocol):
    """What the memory store needs of an embedder."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 array with unit-norm rows (zero rows for empty text)."""
        ...


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
    _WORD = re.compile(r"\w+")

    def __init__(self, dim: int = 1024, bigrams: bool = True) -> None:
        if dim < 8:
            raise ConfigError(f"HashingEmbedder dim={dim} is too small; use at least 8 (default 1024).")
        self.dim = dim
        self.bigrams = bigrams
        self._slots: dict[str, tuple[int, float]] = {}

    def _slot(self, feature: str) -> tuple[int, float]:
        slot = self._slots.get(feature)
        if slot is None:
            h = zlib.crc32(feature.encode("utf-8"))
            slot = (h % self.dim, 1.0 if (h >> 31) & 1 else -1.0)
            if len(self._slots) < 1_000_000:
                self._slots[feature] = slot
        return slot

    def _features(self, text: str) -> list[str]:
        words = [w for w in self._WORD.findall(text.lower()) if w not in _STOPWORDS]
        if self.bigrams:
            return words + [f"{a} {b}" for a, b in zip(words, words[1:])]
        return words

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            counts: dict[int, float] = {}
            for feature in self._features(text):
                index, sign = self._slot(feature)
                counts[index] = counts.get(index, 0.0) + sign
            if counts:
                idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
                out[row, idx] = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def __getstate__(self) -> dict[str, Any]:
        # The slot cache is a pure speed-up: leave it out of pickles.
        return {"dim": self.dim, "bigrams": self.bigrams}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self.dim}, bigrams={self.bigrams})"


def make_embedder(spec: Any = "hashing") -> Embedder:
    """Build an embedder from a name or pass an existing one through.

    Args:
        spec: ``"hashing"`` (default, offline) or an object implementing :class:`Embedder`.

    Raises:
        ConfigError: the spec names no known embedder.
    """
    if isinstance(spec, Embedder):
        return spec
    if spec in (None, "hashing"):
        return HashingEmbedder()
    raise ConfigError(
        f"Unknown embedder {spec!r}. Use 'hashing' (offline default) or pass an object with "
        "name, dim and embed(texts, query=False)."
    )
