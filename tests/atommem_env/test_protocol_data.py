"""The protocol's data rules: same episodes under both protocols, the reference's order and grouping."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import atommem_env  # noqa: F401  (registers the ids)
from atommem_env.datasets import load_benchmark
from atommem_env.datasets.builder import reference_groups
from tests.support.datasets import write_hotpot_file

pytestmark = pytest.mark.usefixtures("fresh_dataset_cache")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write_hotpot_file(tmp_path / "hotpotqa" / "hotpot_dev_distractor_v1.json", num_questions=120)
    return tmp_path


def _make(data_dir: Path, **kwargs):
    return gym.make("AtomMem-HotpotQA-200-v0", data_dir=str(data_dir), num_documents=150, **kwargs).unwrapped


def test_both_protocols_play_the_same_episodes(data_dir: Path) -> None:
    ours, theirs = _make(data_dir), _make(data_dir, protocol="reference")
    assert (ours.source.shuffle, theirs.source.shuffle) == ("episode", "fixed")
    compared = 0
    for seed, index in ((0, 0), (3, 5), (7, 11)):
        a = ours.source.episode(index, np.random.default_rng(seed))
        b = theirs.source.episode(index, np.random.default_rng(seed))
        assert a.questions == b.questions and a.answers == b.answers
        if len(set(b.documents)) == len(b.documents):  # no paragraph shared by two of its questions
            assert sorted(a.documents) == sorted(b.documents)  # the same documents, in another order
            compared += 1
        ours.reset(seed=seed, options={"index": index})
        theirs.reset(seed=seed, options={"index": index})
        assert ours._current.questions == theirs._current.questions
    assert compared


def test_an_explicit_shuffle_wins_over_the_protocol(data_dir: Path) -> None:
    assert _make(data_dir, protocol="reference", shuffle="episode").source.shuffle == "episode"


def test_shared_paragraphs_are_repeated_in_place_of_distractors(data_dir: Path) -> None:
    split = data_dir / "hotpotqa" / "hotpot_dev_distractor_v1.json"
    once = load_benchmark("hotpotqa", data_files=[str(split)], num_documents=150, questions_per_episode=10)
    twice = load_benchmark("hotpotqa", data_files=[str(split)], num_documents=150, questions_per_episode=10,
                           shared_paragraphs="repeated")
    a, b = once.episode(0, np.random.default_rng(1)), twice.episode(0, np.random.default_rng(1))  # q0..q9: q7 shares
    assert len(a.documents) == len(b.documents) == 150
    assert len(set(a.documents)) == 150 and len(set(b.documents)) == 149
    shared = "Title 6-0\nSentence one of 6-0. Sentence two of 6-0."
    assert [p for p, n in Counter(b.documents).items() if n == 2] == [shared]
    assert set(b.documents) < set(a.documents)  # one distractor fewer, nothing else changed


def test_reference_grouping_is_python_random_seed_42(data_dir: Path) -> None:
    groups = reference_groups(600)
    rng, sizes = random.Random(42), []
    while sum(sizes) < 600:  # the reference's generate_random_chunks after random.seed(42)
        sizes.append(rng.choices([1, *range(2, 11)], weights=[0.5] + [0.5 / 9] * 9, k=1)[0])
    assert [stop - start for start, stop in groups][:-1] == sizes[:-1]
    assert groups[-1][1] == 600
    ours = _make(data_dir)
    theirs = _make(data_dir, protocol="reference-grouping")
    assert theirs.source.groups == reference_groups(120)
    assert ours.source.groups != theirs.source.groups  # other questions share an episode
    assert _make(data_dir, protocol="reference").source.groups == ours.source.groups
