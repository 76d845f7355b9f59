"""HashingEmbedder: the offline default (numpy only, deterministic across processes and machines)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from atommem_env.embedders.base import require_text_list
from atommem_env.errors import ConfigError

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
            return words + [f"{a} {b}" for a, b in pairwise(words)]
        return words

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 array with unit-norm rows (zero rows for empty text)."""
        require_text_list(texts)
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
        HashingEmbedder.__init__(self, **state)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self.dim}, bigrams={self.bigrams})"
