"""HashingEmbedder: the offline default (numpy only, deterministic across processes and machines)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from atommem_env.embedders.base import require_text_list
from atommem_env.embedders.feature_codes import FeatureCodes, words_of
from atommem_env.errors import ConfigError

_STOPWORDS = frozenset(
    """a an and are as at be been being but by did do does for from had has have he her his how i if in
    into is it its of on or she so than that the their them then there these they this to was were what
    when where which who whom whose why will with would you your""".split()
)

# From this many texts on, finding and hashing all their features at once beats a pass per text
# (measured on an AMD EPYC, Zen 3: 0.5x the per-text time at 2 texts, 0.75x at 4, 1.0x at 6, 1.2x at
# 8, 1.6x at 12).
_MANY = 8


class HashingEmbedder:
    """Signed feature hashing of lower-cased words and word bigrams (stopwords dropped), normalized.

    Args:
        dim: vector size. 1024 keeps collisions rare for memory entries of a few hundred words.
        bigrams: also hash adjacent word pairs, which makes "New York" differ from "York new".
    """

    name = "hashing"
    sparse = True  # one non-zero per distinct feature: the store lays its vectors out by dimension

    def __init__(self, dim: int = 1024, bigrams: bool = True) -> None:
        if dim < 8:
            raise ConfigError(f"HashingEmbedder dim={dim} is too small; use at least 8 (default 1024).")
        self.dim = dim
        self.bigrams = bigrams
        self._codes: dict[str, int] = {}
        self._batch_codes = FeatureCodes(dim, bigrams, _STOPWORDS)

    def _code(self, feature: str) -> int:
        """``feature``'s cell plus one: its slot's index + 1 for a positive sign, ``dim`` more for a
        negative one (cached: most words recur)."""
        code = self._codes.get(feature)
        if code is None:
            h = zlib.crc32(feature.encode("utf-8"))
            code = h % self.dim + 1 if (h >> 31) & 1 else self.dim + h % self.dim + 1
            if len(self._codes) < 1_000_000:
                self._codes[feature] = code
        return code

    def _features(self, text: str) -> list[str]:
        lowered = text.lower()
        words = [w for w in words_of([lowered], lowered.isascii()) if w not in _STOPWORDS]
        if self.bigrams:
            return words + [f"{a} {b}" for a, b in pairwise(words)]
        return words

    def embed(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 array with unit-norm rows (zero rows for empty text).

        Each row depends on its own text only: embedding texts together gives bit for bit the rows
        that embedding them one by one gives (a batch of envs embeds a turn's texts in one call).
        """
        require_text_list(texts)
        if len(texts) < _MANY:
            return self._embed_rows(texts)
        return self._embed_many(texts)

    def _cells(self, text: str) -> list[int]:
        """Each feature's cell plus one (:meth:`_code`)."""
        codes = self._codes
        return [codes.get(f) or self._code(f) for f in self._features(text)]

    def _embed_rows(self, texts: Sequence[str]) -> np.ndarray:
        """Row by row: the fastest way for a few texts (one per call, as a store's Create sends).

        Bit-identical to :meth:`_embed_many`: a slot's value is its positive features less its
        negative ones, an integer; the squared norm is their exact integer sum, rounded to float32 as
        there (exact below 2**24), and its float32 square root divides the values in float64, whose
        quotient rounded to float32 is the float32 quotient (double rounding is harmless for a
        division). A few numpy calls per text instead of a float32 norm over the whole row: 10-20%
        less CPU per text on Zen 3.
        """
        dim = self.dim
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            cells = self._cells(text)
            if cells:
                counts = np.bincount(cells, minlength=2 * dim + 1)
                values = counts[1 : dim + 1] - counts[dim + 1 :]
                square = int(np.dot(values, values))
                if square:
                    out[row] = values / np.sqrt(np.float32(square))
        return out

    def _embed_many(self, texts: Sequence[str]) -> np.ndarray:
        """All rows in a few numpy calls over every text's slots at once: a batch of envs' turn pays the
        per-call numpy work once, and the features are found and hashed for all texts together
        (:class:`~atommem_env.embedders.feature_codes.FeatureCodes`; docs/PERFORMANCE.md, "Embedding a
        batch of envs together").

        Bit-identical to :meth:`_embed_rows`: a slot's value is a sum of signs, an integer, and so is a
        row's squared norm (exact in float32 below 2**24, i.e. unless one word recurs thousands of times
        in a text), so the float32 square root and division that follow see the same operands as there.
        """
        n, dim = len(texts), self.dim
        out = np.zeros((n, dim), dtype=np.float32)
        signed, text = self._batch_codes(texts)
        if not len(signed):
            return out
        cells = np.abs(signed) - 1  # slot within its row, then offset to its row of the flat output
        cells += text * dim
        cells, slot_of = np.unique(cells, return_inverse=True)
        sums = np.bincount(slot_of, weights=np.sign(signed))
        kept = sums != 0  # signs that cancelled leave a zero, as in the one-text path
        cells, sums = cells[kept], sums[kept]
        rows = cells // dim
        norms = np.sqrt(np.bincount(rows, weights=sums * sums, minlength=n).astype(np.float32))
        out.ravel()[cells] = sums.astype(np.float32) / norms[rows]
        return out

    def __eq__(self, other: object) -> bool:
        # Same settings, same vectors: envs built alike can share one embedder (and one call per turn).
        if not isinstance(other, HashingEmbedder):
            return NotImplemented
        return (type(self), self.dim, self.bigrams) == (type(other), other.dim, other.bigrams)

    def __hash__(self) -> int:
        return hash((type(self), self.dim, self.bigrams))

    def __getstate__(self) -> dict[str, Any]:
        # The slot cache is a pure speed-up: leave it out of pickles.
        return {"dim": self.dim, "bigrams": self.bigrams}

    def __setstate__(self, state: dict[str, Any]) -> None:
        HashingEmbedder.__init__(self, **state)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self.dim}, bigrams={self.bigrams})"
