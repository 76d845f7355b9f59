"""Both vector layouts score like a brute-force dot product, through growth and row moves."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from atommem_env.vectors import ColumnVectors, RowVectors

DIM = 12
VALUES = st.floats(-1, 1, width=32).map(lambda x: 0.0 if abs(x) < 0.3 else x)  # many exact zeros
VECTORS = arrays(np.float32, DIM, elements=VALUES)
OPS = st.lists(st.tuples(st.sampled_from(["set", "move"]), st.integers(0, 40), st.integers(0, 40), VECTORS),
               min_size=1, max_size=30)


@pytest.mark.parametrize("layout", [RowVectors, ColumnVectors])
@given(ops=OPS, query=VECTORS)
def test_scores_match_a_dense_mirror(layout, ops, query):
    table, mirror = layout(DIM, rows=2), np.zeros((41, DIM), np.float32)
    for op, a, b, vector in ops:
        table.reserve(max(a, b) + 1)
        if op == "set":
            table.set(a, vector)
            mirror[a] = vector
        else:
            table.move(a, b)
            mirror[b] = mirror[a]
    n = max(max(a, b) for _, a, b, _ in ops) + 1
    expected = mirror[:n].astype(np.float64) @ query.astype(np.float64)
    np.testing.assert_allclose(table.scores(query, n), expected, atol=1e-5)


@pytest.mark.parametrize("layout", [RowVectors, ColumnVectors])
def test_zero_and_dense_queries(layout):
    table = layout(4)
    table.reserve(3)
    for row, vector in enumerate(np.eye(4, dtype=np.float32)[:3]):
        table.set(row, vector)
    assert table.scores(np.zeros(4, np.float32), 3).tolist() == [0.0, 0.0, 0.0]
    assert table.scores(np.array([1, 2, 3, 4], np.float32), 3).tolist() == [1.0, 2.0, 3.0]
    assert table.scores(np.ones(4, np.float32), 0).shape == (0,)
