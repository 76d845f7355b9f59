import pickle
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from atommem_env import memory
from atommem_env.embedders import HashingEmbedder
from atommem_env.errors import ConfigError, MemoryOpError
from atommem_env.memory import MemoryStore, top_k
from atommem_env.tokenization import RegexTokenizer
from atommem_env.vectors import ColumnVectors, RowVectors, SparseRows
from tests.atommem_env.test_vectors import straightforward_scores


def store(**kwargs) -> MemoryStore:
    return MemoryStore(HashingEmbedder(dim=64), RegexTokenizer(), **kwargs)


def test_ids_are_stable_and_never_reused():
    m = store()
    a, b = m.create("alpha fact"), m.create("beta fact")
    m.delete(a)
    c = m.create("gamma fact")
    assert (a, b, c) == (0, 1, 2)
    assert m.get(b) == "beta fact" and a not in m


def test_update_keeps_the_id_and_changes_retrieval():
    m = store()
    entry = m.create("Paris is the capital of France")
    m.create("Berlin is the capital of Germany")
    m.update(entry, "Madrid is the capital of Spain")
    top = m.search("Spain capital Madrid", 1)[0]
    assert top.id == entry and top.text == "Madrid is the capital of Spain"


def test_search_is_best_first_with_ties_broken_by_id():
    m = store()
    for _ in range(3):
        m.create("same text")
    m.create("Quenville river delta")
    hits = m.search("same text", 3)
    assert [h.id for h in hits] == [0, 1, 2]
    assert m.search("Quenville delta", 1)[0].id == 3
    scores = [h.score for h in m.search("same text", 4)]
    assert scores == sorted(scores, reverse=True)


def test_retrieve_remembers_ranks_and_resolves_them():
    m = store()
    ids = [m.create(f"fact number {word}") for word in ("one", "two", "three")]
    shown = m.retrieve("fact number two", 2)
    assert m.id_at_rank(1) == shown[0].id == ids[1]
    with pytest.raises(MemoryOpError) as err:
        m.id_at_rank(3)
    assert err.value.code == "unknown_rank"
    m.delete(m.id_at_rank(1))
    with pytest.raises(MemoryOpError, match="deleted"):
        m.id_at_rank(1)


def test_retrieve_trims_the_list_to_its_token_budget():
    m = store()
    for i in range(5):
        m.create(" ".join(["word"] * 30) + f" {i}")
    shown = m.retrieve("word", 5, max_tokens=70)
    assert 1 <= len(shown) < 5
    assert len(m.shown_ids) == len(shown)
    total = sum(RegexTokenizer().count(f"Memory {r}: {e.text}\n") for r, e in enumerate(shown, 1))
    assert total <= 70


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=8), budget=st.integers(1, 120))
def test_retrieve_keeps_whole_entries_until_one_is_cut(lengths, budget):
    m = store()
    for i, n in enumerate(lengths):
        m.create(" ".join(["word"] * n) + f" tag{i}")
    ranked = m.search("word", len(lengths))
    shown = m.retrieve("word", len(lengths), max_tokens=budget)
    tok = RegexTokenizer()
    left = budget
    for rank, (entry, full) in enumerate(zip(shown, ranked[: len(shown)], strict=True), 1):
        assert entry.id == full.id
        left -= tok.count(f"Memory {rank}: \n") + tok.count(entry.text)
        if entry.text != full.text:  # only the last shown entry may be cut, to exactly what was left
            assert rank == len(shown) and full.text.startswith(entry.text) and left == 0
    assert left >= 0
    if len(shown) < len(ranked) and (not shown or shown[-1].text == ranked[len(shown) - 1].text):
        # The next entry was left out: not even its prefix and one token would have fitted.
        assert left - tok.count(f"Memory {len(shown) + 1}: \n") <= 0 or not shown


def test_bad_writes_raise_coded_errors():
    m = store(max_entry_tokens=5, capacity=1)
    with pytest.raises(MemoryOpError) as err:
        m.create("   ")
    assert err.value.code == "empty_content"
    with pytest.raises(MemoryOpError) as err:
        m.create("one two three four five six seven")
    assert err.value.code == "entry_too_long"
    m.create("fits")
    with pytest.raises(MemoryOpError) as err:
        m.create("another")
    assert err.value.code == "store_full"
    with pytest.raises(MemoryOpError) as err:
        m.update(99, "x")
    assert err.value.code == "unknown_id"


def test_scratchpad_is_truncated_to_budget():
    m = store(scratchpad_tokens=4)
    assert m.write_scratchpad("one two three four five six") is True
    assert m.scratchpad == "one two three four"
    assert m.write_scratchpad("short") is False and m.scratchpad == "short"


def test_clear_and_pickle_round_trip():
    m = store()
    m.create("kept across pickling")
    clone = pickle.loads(pickle.dumps(m))
    assert clone.entries() == m.entries()
    assert clone.search("pickling", 1)[0].text == "kept across pickling"
    m.clear()
    assert len(m) == 0 and m.create("new") == 0


def test_invalid_configuration_is_rejected():
    with pytest.raises(ConfigError):
        store(capacity=-1)
    with pytest.raises(ConfigError):
        store(max_entry_tokens=0)


WORDS = st.sampled_from("alpha beta gamma delta river city born film company".split())
TEXTS = st.lists(WORDS, min_size=1, max_size=6).map(" ".join)


class MemoryAgainstDict(RuleBasedStateMachine):
    """MemoryStore must behave like a dict of id -> text with fresh ids and brute-force search."""

    embedder = HashingEmbedder  # sparse: vectors gathered on the query's dimensions
    capacity: int | None = 12

    def __init__(self):
        super().__init__()
        self.store = MemoryStore(self.embedder(dim=64), RegexTokenizer(), capacity=self.capacity)
        self.model: dict[int, str] = {}
        self.next_id = 0

    @rule(text=TEXTS)
    def create(self, text):
        if self.capacity is not None and len(self.model) >= self.capacity:
            with pytest.raises(MemoryOpError):
                self.store.create(text)
            return
        assert self.store.create(text) == self.next_id
        self.model[self.next_id] = text
        self.next_id += 1

    @rule(texts=st.lists(TEXTS, min_size=4, max_size=12))
    def create_several(self, texts):  # a response's Creates, and a way past the first 16 rows
        for text in texts:
            self.create(text)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), text=TEXTS)
    def update(self, data, text):
        entry = data.draw(st.sampled_from(sorted(self.model)))
        self.store.update(entry, text)
        self.model[entry] = text

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data):
        entry = data.draw(st.sampled_from(sorted(self.model)))
        self.store.delete(entry)
        del self.model[entry]

    @rule(entry=st.integers(0, 40))
    def delete_unknown(self, entry):
        if entry not in self.model:
            with pytest.raises(MemoryOpError):
                self.store.delete(entry)

    @rule(query=TEXTS, k=st.integers(0, 8))
    def search_matches_brute_force(self, query, k):
        embedder = self.store.embedder
        q = embedder.embed([query], query=True)[0]
        got = self.store.search(query, k)
        assert len(got) == min(k, len(self.model))
        if self.embedder.sparse:  # exactly the straightforward implementation's list and scores
            ids = sorted(self.model)
            scores = straightforward_scores(embedder.embed([self.model[i] for i in ids]), q) if ids else []
            ranked = sorted(zip(ids, scores, strict=True), key=lambda pair: (-pair[1], pair[0]))[: max(k, 0)]
            assert [(e.id, e.text, np.float32(e.score).view(np.int32)) for e in got] == [
                (i, self.model[i], np.float32(score).view(np.int32)) for i, score in ranked]
            return
        # Dense: per-row dot products may differ from the store's by an ulp, so near-ties are
        # compared with a tolerance; exact ties inside the store go by id.
        ref = {i: float(embedder.embed([t])[0] @ q) for i, t in self.model.items()}
        if got:
            kth = sorted(ref.values(), reverse=True)[len(got) - 1]
            assert all(ref[e.id] >= kth - 1e-5 for e in got)
            assert all(abs(e.score - ref[e.id]) < 1e-5 for e in got)
        for a, b in pairwise(got):
            assert a.score > b.score or (a.score == b.score and a.id < b.id)

    @invariant()
    def same_contents(self):
        assert {e.id: e.text for e in self.store.entries()} == self.model
        assert len(self.store) == len(self.model)


class DenseHashingEmbedder(HashingEmbedder):
    """The same vectors, declared dense: the store lays them out by entry."""

    sparse = False


class DenseMemoryAgainstDict(MemoryAgainstDict):
    embedder = DenseHashingEmbedder


class LargeMemoryAgainstDict(MemoryAgainstDict):
    """Past the sizes where the store switches to columns and selects by partition (both lowered)."""

    capacity = None

    def __init__(self):
        self.saved = SparseRows.COLUMNS_ABOVE, memory.PARTITION_ABOVE
        SparseRows.COLUMNS_ABOVE, memory.PARTITION_ABOVE = 20, 10
        super().__init__()

    def teardown(self):
        SparseRows.COLUMNS_ABOVE, memory.PARTITION_ABOVE = self.saved


def test_every_vector_layout_is_exercised():
    assert isinstance(store()._vectors, SparseRows)
    assert isinstance(MemoryStore(DenseHashingEmbedder(dim=64), RegexTokenizer())._vectors, RowVectors)
    large = store()
    for i in range(300):
        large.create(f"entry {i}")
    assert isinstance(large._vectors, ColumnVectors)


@given(scores=st.lists(st.sampled_from([0.0, -0.0, 0.25, 0.5, -1.0, 1.0]), min_size=1, max_size=60),
       k=st.integers(1, 10), data=st.data())
def test_top_k_by_partition_is_the_sorted_top_k(scores, k, data):
    ids = np.array(data.draw(st.permutations(range(len(scores)))), dtype=np.int64)
    scores = np.array(scores, dtype=np.float32)
    by_sort = top_k(scores, ids, k)
    saved, memory.PARTITION_ABOVE = memory.PARTITION_ABOVE, 0
    try:
        by_partition = top_k(scores, ids, k)
    finally:
        memory.PARTITION_ABOVE = saved
    assert by_partition.tolist() == by_sort.tolist()
    expected = sorted(range(len(scores)), key=lambda i: (-scores[i], ids[i]))[:k]
    assert by_sort.tolist() == expected


for machine in (MemoryAgainstDict, DenseMemoryAgainstDict, LargeMemoryAgainstDict):
    machine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestMemoryAgainstDict = MemoryAgainstDict.TestCase
TestDenseMemoryAgainstDict = DenseMemoryAgainstDict.TestCase
TestLargeMemoryAgainstDict = LargeMemoryAgainstDict.TestCase
