"""The entry vectors of one memory store, laid out for how its embedder's vectors look.

A search scores every entry against the query. Dense vectors (neural embedders) are read whole,
one entry after another: :class:`RowVectors`. Feature-hashing vectors have one non-zero per
distinct word or bigram (a query: a few dozen of 1,024), and only the query's non-zero dimensions
can contribute to a score, so a search reads only those: from the rows of a small store
(:class:`SparseRows`: writing an entry is one contiguous row), and from one row per dimension once
the store is large (:class:`ColumnVectors`: a few dozen rows of ``n`` floats instead of ``n``
scattered reads; writing an entry is then a column, so new entries are staged and written
together). A store switches from the first to the second as it grows past
``SparseRows.COLUMNS_ABOVE`` entries (docs/PERFORMANCE.md, "Hot spots fixed", 9).

Each layout takes a query through ``prepare`` once (the store caches it while the query persists)
and scores with ``scores(prepared, n)``. Sparse scores have one definition in every layout and at
every size, :func:`sparse_scores`, so the switch changes no score by a bit. Dense scores are
``np.vecdot``'s.
"""

from __future__ import annotations

import numpy as np


class _Rows:
    """Storage by entry: row ``i`` holds entry ``i``'s vector; rows past the last entry are zero."""

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

    append = set  # a new entry's row is written whole like any other

    def remove(self, row: int, last: int) -> None:
        """Drop entry ``row`` by moving entry ``last`` (the last one) into its place."""
        self._data[row] = self._data[last]
        self._data[last] = 0.0


class RowVectors(_Rows):
    """Dense vectors, one row per entry: a search reads each entry's vector contiguously."""

    def grown(self, rows: int) -> RowVectors:
        """Room for ``rows`` entries (the store calls it as it doubles, and keeps what it returns)."""
        self.reserve(rows)
        return self

    @staticmethod
    def prepare(query: np.ndarray) -> np.ndarray:
        """The query as ``scores`` takes it (as is)."""
        return query

    def scores(self, query: np.ndarray, n: int) -> np.ndarray:
        """Inner products of the prepared ``query`` with the first ``n`` entries."""
        # Row by row (np.vecdot) rather than one BLAS matrix-vector product: BLAS spreads a product
        # of this size over its thread pool, and waking those threads on a busy machine cost 6-12 ms
        # per search at 1,000-10,000 entries, against 0.2-1.8 ms on the calling thread
        # (docs/PERFORMANCE.md, "Hot spots fixed").
        return np.vecdot(self._data[:n], query)


class SparseRows(_Rows):
    """Sparse vectors of a small store, one row per entry: writes are contiguous, and a search gathers
    the query's few dozen dimensions from every row (cheap while the rows are few).

    The query persists across most turns (the store keeps it prepared), so the products of its
    components with each entry's (its terms) are kept too, and a search with the same query gathers
    only the rows written since: the gather from every row reads one cache line per term (rows 4 KB
    apart), about half a search's time inside a batch of stores, while adding the kept terms up reads
    a few dozen contiguous rows. The sum is the same, term for term and in the same order.
    """

    #: Entries above which the store keeps its vectors by dimension instead (:meth:`grown`). At 1,000
    #: entries the gather reads 4 MB of rows a few floats at a time, against a few dozen contiguous
    #: rows of ``n`` floats by dimension; at the 100-200 entries an episode usually holds, rows cost
    #: less overall, because every Create writes one contiguous row instead of a column.
    COLUMNS_ABOVE = 256

    def __init__(self, dim: int, rows: int = 16) -> None:
        super().__init__(dim, rows)
        self._terms_of: SparseQuery | None = None  # the prepared query whose terms are kept
        self._terms = np.zeros((0, rows), dtype=np.float32)  # [i, row]: term i of entry row
        self._fresh = 0  # entries 0 .. fresh - 1 have their terms kept, except those in _stale
        self._stale: list[int] = []

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` entries (the kept terms are dropped if the rows move)."""
        if rows > len(self._data):
            self._terms_of = None  # the kept terms have no room for the new rows
        super().reserve(rows)

    def set(self, row: int, vector: np.ndarray) -> None:
        """Store ``vector`` as entry ``row`` (its kept terms are gathered again at the next search)."""
        super().set(row, vector)
        if row < self._fresh:
            self._stale.append(row)

    # A new entry's row is past every kept term (fresh <= the entry count, always): no check.
    append = _Rows.set

    def remove(self, row: int, last: int) -> None:
        """Drop entry ``row`` by moving entry ``last`` (the last one) into its place."""
        super().remove(row, last)
        self._fresh = min(self._fresh, last)  # rows from the last on are gathered again, in one slice
        if row < self._fresh:
            self._stale.append(row)

    def grown(self, rows: int) -> SparseRows | ColumnVectors:
        """Room for ``rows`` entries: these rows, or the same vectors by dimension above COLUMNS_ABOVE."""
        if rows <= self.COLUMNS_ABOVE:
            self.reserve(rows)
            return self
        columns = ColumnVectors(self._data.shape[1], rows)
        columns.load(self._data)
        return columns

    @staticmethod
    def prepare(query: np.ndarray) -> SparseQuery:
        """The query's non-zero dimensions and their values (:func:`sparse_query`)."""
        return sparse_query(query)

    def scores(self, query: SparseQuery, n: int) -> np.ndarray:
        """Inner products of the prepared ``query`` with the first ``n`` entries."""
        dims, values = query
        if query is not self._terms_of:  # a new query (the store prepares each one once)
            self._terms_of, self._fresh, self._stale = query, 0, []
            self._terms = np.empty((len(dims), len(self._data)), dtype=np.float32)
        terms, fresh = self._terms, self._fresh
        if fresh < n:  # ~2 us less than [fresh:n, dims]
            np.multiply(self._data[fresh:n].take(dims, axis=1).T, values, out=terms[:, fresh:n])
            self._fresh = n
        for row in self._stale:
            if row < n:
                np.multiply(self._data[row].take(dims), values[:, 0], out=terms[:, row])
        self._stale.clear()
        return add_terms(terms[:, :n])


class ColumnVectors:
    """One row per dimension: a search reads only the rows of the query's non-zero dimensions.

    Writing a whole entry is a column: ``dim`` cells one row apart, each in its own cache line. New
    entries (a response's Creates) therefore wait in a small row-major stage, and go into the
    columns before the next read, together and non-zeros only (columns past the last entry are kept
    all zero). Updates and deletes, a few percent of writes, write whole columns.
    """

    STAGE_ROWS = 32

    def __init__(self, dim: int, rows: int = 16) -> None:
        self._data = np.zeros((dim, rows), dtype=np.float32)
        self._stage = np.zeros((self.STAGE_ROWS, dim), dtype=np.float32)
        self._first = 0  # entry held in the stage's first row
        self._staged = 0  # entries held in the stage: first .. first + staged - 1

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` entries (doubling, so appends are amortized O(dim))."""
        size = self._data.shape[1]
        if rows > size:
            data = np.zeros((self._data.shape[0], max(rows, 2 * size)), dtype=np.float32)
            data[:, :size] = self._data
            self._data = data

    def grown(self, rows: int) -> ColumnVectors:
        """Room for ``rows`` entries (the store keeps what it returns)."""
        self.reserve(rows)
        return self

    def load(self, rows: np.ndarray) -> None:
        """Store the vectors ``rows`` (one per row) as entries 0, 1, ..."""
        self._flush()
        self._data[:, : len(rows)] = rows.T

    def append(self, row: int, vector: np.ndarray) -> None:
        """Store ``vector`` as new entry ``row``, one past the last."""
        if self._staged == self.STAGE_ROWS or row != self._first + self._staged:
            self._flush()
            self._first = row
        self._stage[self._staged] = vector
        self._staged += 1

    def set(self, row: int, vector: np.ndarray) -> None:
        """Store ``vector`` as entry ``row``, which holds one already."""
        self._flush()
        self._data[:, row] = vector

    def remove(self, row: int, last: int) -> None:
        """Drop entry ``row`` by moving entry ``last`` (the last one) into its place."""
        self._flush()
        self._data[:, row] = self._data[:, last]
        self._data[:, last] = 0.0

    @staticmethod
    def prepare(query: np.ndarray) -> SparseQuery:
        """The query's non-zero dimensions and their values (:func:`sparse_query`)."""
        return sparse_query(query)

    def scores(self, query: SparseQuery, n: int) -> np.ndarray:
        """Inner products of the prepared ``query`` with the first ``n`` entries."""
        self._flush()
        dims, values = query
        return sparse_scores(self._data[dims, :n], values)

    def _flush(self) -> None:
        # The staged entries' non-zeros, scattered into their (all-zero) columns in one call.
        if self._staged:
            rows, dims = np.nonzero(self._stage[: self._staged])
            self._data[dims, rows + self._first] = self._stage[rows, dims]
            self._staged = 0


SparseQuery = tuple[np.ndarray, np.ndarray]  # the query's non-zero dimensions, their values as a column


def sparse_query(query: np.ndarray) -> SparseQuery:
    """A query as the sparse layouts take it: its non-zero dimensions and, as a column, their values."""
    dims = np.flatnonzero(query)
    return dims, query[dims, None]


def sparse_scores(block: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Scores from the entries' components on the query's dimensions: ``block[i, j]`` is entry ``j``'s
    component on the query's ``i``-th non-zero dimension, ``values[i, 0]`` the query's.

    Multiplied in float32 (each product rounded once, however it is laid out), then added up by
    :func:`add_terms`. A dense query still gets exact scores, only without the saving.
    """
    return add_terms(np.multiply(block, values, order="C"))


def add_terms(terms: np.ndarray) -> np.ndarray:
    """Each column's sum, ``terms[0, j] + terms[1, j] + ...`` in float32, added row after row to 0.

    A reduction over the first axis of an array of two or more columns whose rows are contiguous adds
    whole rows in order, with no pairwise or SIMD regrouping of one score's terms (as a reduction along
    contiguous memory, or a BLAS or einsum product, may do, the latter in ways that depend on the CPU).
    So every score is the same sum in the same order, whatever the layout and however many entries are
    scored at once.
    """
    if terms.shape[1] == 1:  # numpy would add a single column's terms as one run: pairwise
        return np.add.reduce(np.repeat(terms, 2, axis=1), axis=0)[:1]
    return np.add.reduce(terms, axis=0)


Vectors = RowVectors | SparseRows | ColumnVectors


def vectors_for(embedder: object) -> Vectors:
    """A new store's layout for ``embedder``'s vectors: scored on the query's dimensions when it
    declares them ``sparse``, whole otherwise."""
    dim = embedder.dim  # type: ignore[attr-defined]
    if getattr(embedder, "sparse", False):
        # Room for every entry the rows will ever hold, at once: numpy takes zeroed memory from the
        # OS, which maps only the pages the store writes, so the unused part costs no memory or time,
        # while growing by doubling copied the rows four times per episode: about a quarter of the
        # store's own CPU time on bench_reference's 64-episode trace.
        return SparseRows(dim, SparseRows.COLUMNS_ABOVE)
    return RowVectors(dim)
