"""The long-context builder: grouping, document sets, determinism, shuffles, errors, pickling."""

from __future__ import annotations

import pickle
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atommem_env.datasets import EpisodeSource, LongContextSource, group_questions, load_benchmark
from atommem_env.errors import ConfigError, DataError
from tests.support.datasets import write_hotpot_file

pytestmark = pytest.mark.usefixtures("fresh_dataset_cache")


@pytest.fixture
def split_file(tmp_path: Path) -> Path:
    return write_hotpot_file(tmp_path / "hotpotqa" / "hotpot_dev_distractor_v1.json", num_questions=120)


def _source(split_file: Path, **kwargs) -> LongContextSource:
    kwargs.setdefault("num_documents", 150)
    return load_benchmark("hotpotqa", data_files=[str(split_file)], **kwargs)


# --- grouping ---------------------------------------------------------------------------------------

def test_paper_grouping_distribution() -> None:
    groups = group_questions(40_000, "paper", seed=0)
    sizes = Counter(stop - start for start, stop in groups[:-1])  # the last group may be cut short
    total = sum(sizes.values())
    assert set(sizes) <= set(range(1, 11))
    assert abs(sizes[1] / total - 0.5) < 0.02
    for k in range(2, 11):
        assert abs(sizes[k] / total - 0.5 / 9) < 0.01


@given(n=st.integers(0, 500), mode=st.one_of(st.just("paper"), st.just("single"), st.integers(1, 12)),
       seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_groups_partition_the_questions_consecutively(n: int, mode, seed: int) -> None:
    groups = group_questions(n, mode, seed)
    assert [i for start, stop in groups for i in range(start, stop)] == list(range(n))
    assert all(1 <= stop - start <= 10 for start, stop in groups) or mode not in ("paper", "single")
    assert groups == group_questions(n, mode, seed)  # drawn once, stable


@pytest.mark.parametrize("mode", ["pair", 0, -3, True, 2.5])
def test_invalid_grouping_mode(mode) -> None:
    with pytest.raises(ConfigError, match="questions_per_episode"):
        group_questions(10, mode)


# --- episodes ---------------------------------------------------------------------------------------

def test_source_implements_the_protocol(split_file: Path) -> None:
    source = _source(split_file)
    assert isinstance(source, EpisodeSource)
    assert source.name == "hotpotqa/dev/150"
    assert len(source) == len(source.groups) and source.num_questions == 120


@pytest.mark.parametrize("index", [0, 1, 7, -1])
def test_episode_has_exactly_n_unique_documents_with_all_own_paragraphs(split_file: Path, index: int) -> None:
    source = _source(split_file)
    index = index % len(source)
    episode = source.episode(index, np.random.default_rng(3))
    assert len(episode.documents) == 150 == len(set(episode.documents))
    start, stop = source.groups[index]
    samples = source.corpus.samples[start:stop]
    assert set(p for s in samples for p in s.paragraphs) <= set(episode.documents)
    assert episode.questions == tuple(s.question for s in samples)
    assert episode.answers == tuple(s.answer for s in samples)
    assert episode.episode_id == f"hotpotqa/dev/150/{index}"
    assert len(episode.supporting) == len(samples)
    for s, gold in zip(samples, episode.supporting, strict=True):
        assert gold == tuple(p for p in s.paragraphs if p.split("\n")[0] in s.supporting_titles)
        assert len(gold) == 2 and set(gold) <= set(episode.documents)
    assert episode.context.startswith("Document 1:\n") and f"Document 150:\n{episode.documents[-1]}" in episode.context


def test_episode_is_a_pure_function_of_index_and_rng(split_file: Path) -> None:
    source = _source(split_file)
    a = source.episode(5, np.random.default_rng(11))
    b = source.episode(5, np.random.default_rng(11))
    c = source.episode(5, np.random.default_rng(12))
    assert a == b
    assert a.documents != c.documents and set(a.questions) == set(c.questions)


def test_default_shuffle_moves_gold_paragraphs_between_seeds(split_file: Path) -> None:
    source = _source(split_file)
    positions = {tuple(sorted(source.episode(0, np.random.default_rng(s)).documents.index(p)
                              for p in source.corpus.samples[0].paragraphs)) for s in range(5)}
    assert len(positions) > 1


def test_fixed_shuffle_reproduces_the_reference_permutation(split_file: Path) -> None:
    source = _source(split_file, shuffle="fixed")
    start, stop = source.groups[0]
    own = list(dict.fromkeys(p for s in source.corpus.samples[start:stop] for p in s.paragraphs))
    for seed in (0, 1):
        episode = source.episode(0, np.random.default_rng(seed))
        # The reference: own paragraphs first, then distractors, shuffled by random.Random(4).
        slots = list(range(150))
        random.Random(4).shuffle(slots)
        for i, paragraph in enumerate(own):
            assert episode.documents[slots.index(i)] == paragraph


def test_single_question_mode(split_file: Path) -> None:
    source = _source(split_file, questions_per_episode="single")
    assert len(source) == 120
    assert all(len(source.episode(i, np.random.default_rng(0)).questions) == 1 for i in (0, 50, 119))


def test_fixed_group_size_and_max_questions(split_file: Path) -> None:
    source = _source(split_file, questions_per_episode=4, max_questions=10)
    assert source.groups == ((0, 4), (4, 8), (8, 10))
    assert source.question_ids(2) == ("q8", "q9")


def test_split_too_small_for_n_names_the_fix(split_file: Path) -> None:
    with pytest.raises(DataError, match=r"only 1\d{3} unique paragraphs.*num_documents=5000.*smaller num_documents"):
        _source(split_file, num_documents=5000)


def test_group_larger_than_n_names_the_fix(split_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"episode 0 .* own paragraphs, more than num_documents=30.*'single'"):
        _source(split_file, num_documents=30, questions_per_episode=8)


@pytest.mark.parametrize("kwargs, pattern", [({"shuffle": "random"}, "shuffle="),
                                             ({"num_documents": 0}, "num_documents="),
                                             ({"max_questions": 0}, "max_questions=")])
def test_invalid_options(split_file: Path, kwargs, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        _source(split_file, **kwargs)


def test_index_out_of_range(split_file: Path) -> None:
    source = _source(split_file)
    with pytest.raises(ConfigError, match=rf"out of range.*{len(source)} episodes"):
        source.episode(len(source), np.random.default_rng(0))


def test_pickle_is_cheap_equal_and_reuses_the_parsed_split(split_file: Path, monkeypatch) -> None:
    source = _source(split_file)
    blob = pickle.dumps(source)
    assert len(blob) < 2_000, len(blob)  # arguments only, never the pool (which is ~250 kB here)

    import atommem_env.datasets.sources as sources

    def no_reparse(*args, **kwargs):
        raise AssertionError("unpickling must reuse the per-process cache")

    monkeypatch.setattr(sources, "read_records", no_reparse)
    copy = pickle.loads(blob)
    assert copy == source and copy is not source
    assert copy.episode(3, np.random.default_rng(9)) == source.episode(3, np.random.default_rng(9))


def test_file_is_parsed_once_per_process(split_file: Path, monkeypatch) -> None:
    import atommem_env.datasets.sources as sources

    calls = []
    real = sources.read_records
    monkeypatch.setattr(sources, "read_records", lambda path: calls.append(path) or real(path))
    for n in (100, 150, 200):
        _source(split_file, num_documents=n)
    assert len(calls) == 1


@pytest.mark.parametrize("kwargs", [{"max_questions": "3"}, {"max_questions": 2.0}, {"max_questions": True},
                                    {"num_documents": "150"}, {"num_documents": 150.0}])
def test_source_options_reject_values_of_the_wrong_type(split_file: Path, kwargs) -> None:
    """A number given as a string or float is refused by name instead of being converted or crashing."""
    ((name, value),) = kwargs.items()
    with pytest.raises(ConfigError, match=f"{name}={value!r}"):
        _source(split_file, **kwargs)
