"""Every vector layout scores like a brute-force dot product through appends, rewrites, removals and
growth; the sparse layouts give bit-identical scores to a plain loop, at every size and across the
switch from rows to columns."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from atommem_env.vectors import ColumnVectors, RowVectors, SparseRows, vectors_for

DIM = 20  # above 16, so a pairwise or SIMD regrouping of a score's terms would show
VALUES = st.floats(-1, 1, width=32).map(lambda x: 0.0 if abs(x) < 0.5 else x)  # many exact zeros
VECTORS = arrays(np.float32, DIM, elements=VALUES)
OPS = st.lists(st.tuples(st.sampled_from(["append", "append", "set", "remove"]), st.integers(0, 60), VECTORS),
               min_size=1, max_size=25)


class SmallStageColumns(ColumnVectors):
    STAGE_ROWS = 3  # fills within a test case


class EarlyColumns(SparseRows):
    COLUMNS_ABOVE = 4  # switches to columns within a test case


def straightforward_scores(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The sparse scores' definition, one float32 operation at a time: the products of the query's
    non-zero components with the entry's, added to 0 in ascending order of dimension."""
    dims = [d for d in range(len(query)) if query[d] != 0]
    scores = []
    for vector in vectors:
        total = np.float32(0.0)
        for d in dims:
            total = np.float32(total + np.float32(vector[d]) * np.float32(query[d]))
        scores.append(total)
    return np.array(scores, dtype=np.float32)


def play(layout, ops, after=None):
    """Run ``ops`` through a fresh ``layout`` the way MemoryStore does; returns it and a dense mirror.
    ``after(table, mirror)`` is called after every op."""
    table, capacity, mirror, n = layout(DIM, rows=2), 2, np.zeros((0, DIM), np.float32), 0
    for op, i, vector in ops:
        if op == "append" or n == 0:
            if n == capacity:
                table, capacity = table.grown(2 * n), 2 * n
            table.append(n, vector)
            mirror = np.vstack([mirror, vector])
            n += 1
        elif op == "set":
            table.set(i % n, vector)
            mirror[i % n] = vector
        else:
            row, last = i % n, n - 1
            table.remove(row, last)
            mirror[row] = mirror[last]
            mirror, n = mirror[:last], last
        if after is not None:
            after(table, mirror)
    return table, mirror


@pytest.mark.parametrize("layout", [RowVectors, SparseRows, EarlyColumns, ColumnVectors, SmallStageColumns])
@settings(max_examples=40)
@given(ops=OPS, query=VECTORS)
def test_scores_match_a_dense_mirror(layout, ops, query):
    table, mirror = play(layout, ops)
    expected = mirror.astype(np.float64) @ query.astype(np.float64)
    np.testing.assert_allclose(table.scores(table.prepare(query), len(mirror)), expected, atol=1e-5)


@pytest.mark.parametrize("layout", [SparseRows, EarlyColumns, ColumnVectors, SmallStageColumns])
@settings(max_examples=60)
@given(ops=OPS, query=VECTORS)
def test_sparse_scores_are_bit_identical_to_the_plain_loop(layout, ops, query):
    table, mirror = play(layout, ops)
    got = table.scores(table.prepare(query), len(mirror))
    assert got.dtype == np.float32
    assert got.view(np.int32).tolist() == straightforward_scores(mirror, query).view(np.int32).tolist()


@settings(max_examples=40)
@given(vectors=st.lists(VECTORS, min_size=5, max_size=12), query=VECTORS)
def test_the_switch_to_columns_keeps_every_score(vectors, query):
    rows = EarlyColumns(DIM, rows=len(vectors))
    for row, vector in enumerate(vectors):
        rows.append(row, vector)
    before = rows.scores(rows.prepare(query), len(vectors))
    columns = rows.grown(2 * len(vectors))
    assert isinstance(columns, ColumnVectors)
    after = columns.scores(columns.prepare(query), len(vectors))
    assert after.view(np.int32).tolist() == before.view(np.int32).tolist()


@pytest.mark.parametrize("layout", [RowVectors, SparseRows, ColumnVectors])
def test_zero_and_dense_queries(layout):
    table = layout(4)
    table.reserve(3)
    for row, vector in enumerate(np.eye(4, dtype=np.float32)[:3]):
        table.append(row, vector)
    assert table.scores(table.prepare(np.zeros(4, np.float32)), 3).tolist() == [0.0, 0.0, 0.0]
    assert table.scores(table.prepare(np.array([1, 2, 3, 4], np.float32)), 3).tolist() == [1.0, 2.0, 3.0]
    assert table.scores(table.prepare(np.ones(4, np.float32)), 0).shape == (0,)


def test_layout_follows_the_embedder():
    class Embedder:
        dim, sparse = 8, True

    assert isinstance(vectors_for(Embedder()), SparseRows)
    Embedder.sparse = False
    assert isinstance(vectors_for(Embedder()), RowVectors)



@pytest.mark.parametrize("layout", [SparseRows, EarlyColumns])
@settings(max_examples=60)
@given(ops=OPS, query=VECTORS, other=VECTORS)
def test_scores_stay_bit_identical_while_a_query_persists(layout, ops, query, other):
    """SparseRows keeps a query's terms between searches: after every write, a search with the same
    prepared query (now and then another query in between) scores like the plain loop."""
    prepared: dict[int, object] = {}
    steps = iter(range(len(ops)))

    def search(table, mirror):
        layout_id = id(type(table))  # the query is prepared again after the switch to columns
        query_of_table = prepared.setdefault(layout_id, table.prepare(query))
        if next(steps) % 4 == 3:
            table.scores(table.prepare(other), len(mirror))
        got = table.scores(query_of_table, len(mirror))
        assert got.view(np.int32).tolist() == straightforward_scores(mirror, query).view(np.int32).tolist()

    play(layout, ops, after=search)
