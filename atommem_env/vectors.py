"""The entry vectors of one memory store, laid out for how its embedder's vectors look.

A search scores every entry against the query, so its cost is the bytes it reads. Dense vectors
(neural embedders) are read whole, one entry after another: :class:`RowVectors`. Feature-hashing
vectors have one non-zero per distinct word or bigram (a query: a few dozen of 1,024), and only the
query's non-zero dimensions can contribute to a score: :class:`ColumnVectors` keeps one row per
dimension, so a search reads a few dozen rows of ``n`` floats instead of all ``n x dim``
(docs/PERFORMANCE.md, hot spot 5: retrieval 3x faster at 1,000 entries and 11x at 10,000, about
10 us slower at 10-100).

Both give the same scores up to the order of float additions (an ulp); exact ties stay exact ties,
since identical vectors give identical sums in either layout.
"""

from __future__ import annotations

import numpy as np


class RowVectors:
    """One row per entry: a search reads each entry's vector contiguously."""

    def __init__(self, dim: int, rows: int = 16) -> None:
        self._data = np.zeros((rows, dim), dtype=np.float32)

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` entries (doubling, so appends are amortized O(dim))."""
        if rows > len(self._data):
            data = np.zeros((max(rows, 2 * len(self._data)), self._data.shape[1]), dtype=np.float32)
            data[: len(self._data)] = self._data
            self._data = data

    def set(self, row: int, vector: np.ndarray) -> None:
        """Store ``vector`` as entry ``row``."""
        self._data[row] = vector

    def move(self, src: int, dst: int) -> None:
        """Copy entry ``src`` over entry ``dst`` (compaction after a delete)."""
        self._data[dst] = self._data[src]

    def scores(self, query: np.ndarray, n: int) -> np.ndarray:
        """Inner products of ``query`` with the first ``n`` entries."""
        # Row by row (np.vecdot) rather than one BLAS matrix-vector product: BLAS spreads a product
        # of this size over its thread pool, and waking those threads on a busy machine cost 6-12 ms
        # per search at 1,000-10,000 entries, against 0.2-1.8 ms on the calling thread
        # (docs/PERFORMANCE.md, "Hot spots fixed").
        return np.vecdot(self._data[:n], query)


class ColumnVectors:
    """One row per dimension: a search reads only the rows of the query's non-zero dimensions.

    Each entry's non-zero dimensions are kept too, so writing an entry touches only those cells
    (a whole column is ``dim`` scattered writes) and clears the ones its previous vector used.
    """

    def __init__(self, dim: int, rows: int = 16) -> None:
        self._data = np.zeros((dim, rows), dtype=np.float32)
        self._dims: list[np.ndarray] = [_NO_DIMS] * rows

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` entries (doubling, so appends are amortized O(dim))."""
        size = self._data.shape[1]
        if rows > size:
            data = np.zeros((self._data.shape[0], max(rows, 2 * size)), dtype=np.float32)
            data[:, :size] = self._data
            self._data = data
            self._dims.extend([_NO_DIMS] * (data.shape[1] - size))

    def set(self, row: int, vector: np.ndarray) -> None:
        """Store ``vector`` as entry ``row``."""
        dims = np.flatnonzero(vector)
        self._write(row, dims, vector[dims])

    def move(self, src: int, dst: int) -> None:
        """Copy entry ``src`` over entry ``dst`` (compaction after a delete)."""
        dims = self._dims[src]
        self._write(dst, dims, self._data[dims, src])

    def _write(self, row: int, dims: np.ndarray, values: np.ndarray) -> None:
        self._data[self._dims[row], row] = 0.0
        self._data[dims, row] = values
        self._dims[row] = dims

    def scores(self, query: np.ndarray, n: int) -> np.ndarray:
        """Inner products of ``query`` with the first ``n`` entries."""
        # einsum runs on the calling thread (a BLAS product could wake its thread pool, see
        # RowVectors.scores). A dense query still gets exact scores here, only without the saving.
        dims = np.flatnonzero(query)
        return np.einsum("i,ij->j", query[dims], self._data[dims, :n])


_NO_DIMS = np.zeros(0, dtype=np.int64)


def vectors_for(embedder: object) -> RowVectors | ColumnVectors:
    """The layout for ``embedder``'s vectors: by dimension when it declares them ``sparse``."""
    dim = embedder.dim  # type: ignore[attr-defined]
    return ColumnVectors(dim) if getattr(embedder, "sparse", False) else RowVectors(dim)
