"""Tests of the procedurally generated synthetic benchmark."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atommem_env.datasets.base import Episode, EpisodeSource, render_documents
from atommem_env.datasets.synthetic import SyntheticEpisode, SyntheticSource, evidence_facts
from atommem_env.datasets.synthetic_world import RELATIONS
from atommem_env.errors import ConfigError
from atommem_env.tokenization import RegexTokenizer, chunk_text

REPO = Path(__file__).resolve().parents[2]


def _digest(episode: Episode) -> str:
    return hashlib.sha256(repr(episode).encode()).hexdigest()


def _check_well_formed(source: SyntheticSource, built: SyntheticEpisode) -> None:
    """Every invariant the benchmark promises, checked on one episode."""
    ep = built.episode
    assert len(ep.documents) == source.num_documents
    assert len(set(ep.documents)) == len(ep.documents)
    assert ep.context == render_documents(ep.documents)
    assert len(ep.questions) == len(ep.answers) == len(ep.supporting) == len(ep.aliases)
    assert all(aliases == () for aliases in ep.aliases)
    assert len(built.facts) == len(ep.documents)

    # One document per subject and functional relations: the fact table has one object per key.
    subjects = [fact.subject for fact in built.facts]
    assert len(set(subjects)) == len(subjects)
    table = {(f.subject, f.relation): f.object for f in built.facts}
    for doc, fact in zip(ep.documents, built.facts, strict=True):
        assert doc.split("\n", 1)[0] == fact.subject
        assert fact.sentence in doc and fact.subject in fact.sentence and fact.object in fact.sentence

    facts = evidence_facts(ep)
    for q, (question, answer, docs) in enumerate(zip(ep.questions, ep.answers, ep.supporting, strict=True)):
        path, chain = built.paths[q], built.chains[q]
        assert len(path) == source.hops and len(docs) == source.hops and len(chain) == source.hops + 1
        # Exactly one entity satisfies the question: walk the chain through the episode's facts.
        entity = chain[0]
        for relation in path:
            entity = table[(entity, relation)]
        assert entity == answer == chain[-1]
        assert not re.search(rf"\b{re.escape(answer)}\b", question, re.IGNORECASE)
        assert chain[0] in question
        assert all(doc in ep.documents for doc in docs)
        assert len(set(docs)) == len(docs)  # every hop has its own bridge document
        assert answer in docs[-1]
        assert not any(answer in doc for doc in docs[:-1])  # no shortcut from an early hop
        assert len(facts[q]) == source.hops
        for doc, sentence, relation, subject, obj in zip(docs, facts[q], path, chain[:-1], chain[1:], strict=True):
            assert sentence in doc and subject in sentence and obj in sentence
            assert table[(subject, relation)] == obj


def _build(index: int = 0, seed: int = 0, **kwargs) -> tuple[SyntheticSource, SyntheticEpisode]:
    source = SyntheticSource(**kwargs)
    return source, source.build(index, np.random.default_rng(seed))


def test_protocol_and_defaults() -> None:
    source = SyntheticSource()
    assert isinstance(source, EpisodeSource)
    assert source.name == "synthetic" and len(source) == 100_000
    assert (source.num_documents, source.questions_per_episode, source.hops) == (40, 1, 2)
    ep = source.episode(7, np.random.default_rng(1))
    assert ep.episode_id == "synthetic/0/7"
    assert ep == source.build(7, np.random.default_rng(1)).episode


def test_pickle_round_trip() -> None:
    source = SyntheticSource(num_documents=50, questions_per_episode="paper", seed_salt=3)
    clone = pickle.loads(pickle.dumps(source))
    assert clone.episode(8, np.random.default_rng(2)) == source.episode(8, np.random.default_rng(2))


def test_same_index_and_seed_give_identical_episode() -> None:
    source = SyntheticSource(num_documents=60, questions_per_episode="paper", hops=3)
    first = source.episode(123, np.random.default_rng(5))
    assert first == source.episode(123, np.random.default_rng(5))
    assert first == SyntheticSource(num_documents=60, questions_per_episode="paper",
                                    hops=3).episode(123, np.random.default_rng(5))


def test_identical_across_processes() -> None:
    script = (
        "import hashlib, numpy as np\n"
        "from atommem_env.datasets.synthetic import SyntheticSource\n"
        "ep = SyntheticSource(num_documents=80, questions_per_episode='paper').episode("
        "4242, np.random.default_rng(9))\n"
        "print(hashlib.sha256(repr(ep).encode()).hexdigest())\n"
    )
    # A different hash seed in the child proves nothing depends on hash() or set order.
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=REPO, check=True).stdout.strip()
    here = SyntheticSource(num_documents=80, questions_per_episode="paper").episode(
        4242, np.random.default_rng(9))
    assert out == _digest(here)


def test_different_indices_and_salts_differ() -> None:
    source = SyntheticSource()
    episodes = [source.episode(i, np.random.default_rng(0)) for i in range(30)]
    assert len({ep.questions for ep in episodes}) == 30
    assert len({ep.answers for ep in episodes}) == 30
    salted = SyntheticSource(seed_salt=1).episode(0, np.random.default_rng(0))
    assert salted.questions != episodes[0].questions and salted.episode_id == "synthetic/1/0"


def test_world_depends_on_index_only_and_rng_shuffles() -> None:
    a = SyntheticSource().episode(11, np.random.default_rng(0))
    b = SyntheticSource().episode(11, np.random.default_rng(1))
    assert (a.questions, a.answers, a.supporting) == (b.questions, b.answers, b.supporting)
    assert a.documents != b.documents
    # The questions do not depend on the context length (the pool is drawn after them).
    long = SyntheticSource(num_documents=800).episode(11, np.random.default_rng(0))
    assert (long.questions, long.answers, long.supporting) == (a.questions, a.answers, a.supporting)


@pytest.mark.parametrize("hops", [1, 2, 3])
@pytest.mark.parametrize("questions", [1, 4, "paper"])
def test_well_formed(hops: int, questions: int | str) -> None:
    source = SyntheticSource(num_documents=40, questions_per_episode=questions, hops=hops)
    for index in range(10):
        _check_well_formed(source, source.build(index, np.random.default_rng(index)))


def test_hard_distractor_twins() -> None:
    source, built = _build(3, num_documents=40, hops=2)
    gold = {doc for docs in built.episode.supporting for doc in docs}
    for doc, fact in zip(built.episode.documents, built.facts, strict=True):
        if doc not in gold:
            continue
        twins = [f for f in built.facts if f.relation == fact.relation and f.subject != fact.subject
                 and (set(f.subject.split()) & set(fact.subject.split())
                      or f.subject[:2] == fact.subject[:2])]
        assert twins, f"no look-alike distractor for {fact}"


def test_all_relations_and_paths_occur() -> None:
    seen = Counter()
    for index in range(200):
        _, built = _build(index, num_documents=10, hops=1)
        seen.update(p[0] for p in built.paths)
    assert set(seen) == set(RELATIONS)


def test_evidence_sentences_found_whole_in_chunks() -> None:
    tokenizer = RegexTokenizer()
    for index in range(5):
        _, built = _build(index, num_documents=120, questions_per_episode=3, hops=3)
        chunks = chunk_text(built.episode.context, tokenizer, chunk_tokens=300, overlap=40)
        assert len(chunks) > 5
        for sentences in evidence_facts(built.episode):
            for sentence in sentences:
                assert tokenizer.count(sentence) <= 30
                assert any(sentence in chunk for chunk in chunks)


def test_evidence_usually_in_different_chunks() -> None:
    tokenizer = RegexTokenizer()
    spread = total = 0
    for index in range(40):
        ep = SyntheticSource(num_documents=200, hops=2).episode(index, np.random.default_rng(index))
        chunks = chunk_text(ep.context, tokenizer, chunk_tokens=1000, overlap=100)
        sentences = evidence_facts(ep)[0]
        homes = [{i for i, chunk in enumerate(chunks) if s in chunk} for s in sentences]
        spread += not (homes[0] & homes[1])
        total += 1
    assert spread / total > 0.6


def test_evidence_facts_rejects_foreign_episodes() -> None:
    foreign = Episode("x/0", ("Who?",), ("Ann",), ("T\nBob met Ann. Ann met Bob.",), "ctx",
                      supporting=(("T\nBob met Ann. Ann met Bob.",),))
    with pytest.raises(ValueError, match="SyntheticSource"):
        evidence_facts(foreign)


def test_paper_grouping_distribution() -> None:
    source = SyntheticSource(num_documents=20, questions_per_episode="paper", hops=2)
    counts = Counter(len(source.episode(i, np.random.default_rng(0)).questions) for i in range(1500))
    assert set(counts) == set(range(1, 11))
    assert abs(counts[1] / 1500 - 0.5) < 0.05
    for k in range(2, 11):
        assert abs(counts[k] / 1500 - 0.5 / 9) < 0.025


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"num_documents": 0}, "num_documents=0"),
        ({"num_documents": 4.5}, "num_documents=4.5"),
        ({"hops": 0}, "hops=0"),
        ({"hops": 4}, "hops=4"),
        ({"hops": True}, "hops=True"),
        ({"num_episodes": 0}, "num_episodes=0"),
        ({"seed_salt": -1}, "seed_salt=-1"),
        ({"questions_per_episode": 0}, "questions_per_episode=0"),
        ({"questions_per_episode": "Paper"}, "'paper'"),
        ({"num_documents": 5, "questions_per_episode": 3}, "num_documents >= 6"),
        ({"num_documents": 25, "questions_per_episode": "paper", "hops": 3}, "num_documents >= 30"),
    ],
)
def test_option_validation(kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        SyntheticSource(**kwargs)


@pytest.mark.parametrize("index", [-1, 10, 2.0, True])
def test_index_validation(index: object) -> None:
    with pytest.raises(ConfigError, match="index"):
        SyntheticSource(num_episodes=10).episode(index, np.random.default_rng(0))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    index=st.integers(0, 99_999),
    seed=st.integers(0, 2**32 - 1),
    hops=st.integers(1, 3),
    questions=st.one_of(st.integers(1, 6), st.just("paper")),
    extra=st.integers(0, 150),
    salt=st.integers(0, 2**31),
)
def test_property_every_episode_well_formed(
    index: int, seed: int, hops: int, questions: int | str, extra: int, salt: int
) -> None:
    max_questions = 10 if questions == "paper" else questions
    source = SyntheticSource(num_documents=max_questions * hops + extra,
                             questions_per_episode=questions, hops=hops, seed_salt=salt)
    _check_well_formed(source, source.build(index, np.random.default_rng(seed)))
