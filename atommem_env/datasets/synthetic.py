"""A procedurally generated multi-hop QA benchmark: no files, no network, same episode everywhere.

:class:`SyntheticSource` imitates the long contexts of HotpotQA / 2WikiMultihopQA / MuSiQue with
fictional entities (syllable-made people, cities, countries, films, companies, bands) and functional
relations between them. A question composes 1-3 relations from a start entity, e.g.
``"In which city was the director of the film Morvane Lights born?"``; each hop's fact sits in its own
*bridge* document, shuffled among distractors, so an agent without memory cannot answer while one that
stored the right facts can.

What comes from where:

* the *world* of episode ``index`` — number of questions, relation paths, entity names, evidence
  documents, hard distractors and the distractor pool — is a pure function of ``(seed_salt, index)``
  and the constructor options, drawn from ``np.random.default_rng([seed_salt, index])``. The questions
  are drawn before the pool, so they do not depend on ``num_documents``: the same index asks the same
  questions at 40 or 800 documents;
* which distractors fill the context and the document order come from the episode ``rng`` passed to
  :meth:`SyntheticSource.episode`.

Distractors: each gold document has a *hard* twin — same relation, a look-alike subject (shares a
first/last name, a title word or a syllable) pointing to a look-alike object — so the twins form a
parallel decoy chain; the rest are pool documents with random relations. Every subject has one document
and every relation is functional, so each question has exactly one answer; the answer is never in the
question and always verbatim in the last evidence document.

Finding the evidence (for scripted oracles): ``Episode.supporting[q]`` lists question q's evidence
documents *in hop order*; :func:`evidence_facts` returns the one fact sentence of each, verbatim. A
fact sentence names both its entities in full, so it is self-contained. To store facts from chunk text,
test ``sentence in chunk``. A sentence is at most about 25 ``RegexTokenizer`` tokens (invented names
cost a BPE tokenizer more; budget 40), and a chunk overlap of at least a sentence's length puts every
sentence whole into some chunk, so with the paper's overlap of 100 each fact is found verbatim.

Size and speed (measured 2026-11-22 with ``RegexTokenizer`` on one core of the development
container, median of 50 builds): a document is about 45 tokens, so 40 documents make about 1.8K
tokens (pick ``chunk_tokens`` of a few hundred so the evidence spreads over chunks) and 800 make
about 36K (nine 4K-token chunks; the paper's real paragraphs are about three times longer). Build
time: 40 documents 1.5 ms, 200 documents 6 ms, 800 documents 25 ms (33 ms with ``"paper"``
grouping and 3 hops; worst of 50: 53 ms).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from atommem_env.datasets.base import Episode, render_documents
from atommem_env.datasets.synthetic_world import (
    PATHS,
    RELATIONS,
    Draws,
    Names,
    question_text,
    render_document,
)
from atommem_env.errors import ConfigError

_MAX_PAPER_QUESTIONS = 10


@dataclass(frozen=True)
class Fact:
    """The one fact a synthetic document states.

    Attributes:
        subject: the document's title entity.
        relation: a key of :data:`~atommem_env.datasets.synthetic_world.RELATIONS`.
        object: the related entity.
        sentence: the sentence stating it, verbatim as in the document.
    """

    subject: str
    relation: str
    object: str
    sentence: str


@dataclass(frozen=True)
class SyntheticEpisode:
    """An episode with the ground truth behind it (for oracles, analysis and tests).

    Attributes:
        episode: the episode as the environment sees it.
        facts: the fact of each document, aligned with ``episode.documents``.
        paths: per question, the relation names of its hops.
        chains: per question, the entities from the start entity to the answer (``hops + 1`` names).
    """

    episode: Episode
    facts: tuple[Fact, ...]
    paths: tuple[tuple[str, ...], ...]
    chains: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class _Doc:
    text: str
    fact: Fact


def _document(d: Draws, relation: str, subject: str, obj: str) -> _Doc:
    kind = RELATIONS[relation].subject
    text, sentence = render_document(d, kind, subject, relation, obj)
    return _Doc(text, Fact(subject, relation, obj, sentence))


class SyntheticSource:
    """Procedurally generated multi-hop QA episodes (implements ``EpisodeSource``).

    Args:
        num_documents: documents per episode (gold + hard distractors + pool). Default 40; the paper
            evaluates at 200, 400 and 800. Must hold every question's evidence.
        questions_per_episode: questions per episode, an int >= 1 (default 1, the single-question
            mode), or ``"paper"``: 1 with probability 0.5, else uniform in 2-10, drawn per index.
        hops: relations composed per question, 1-3 (default 2, like HotpotQA bridge questions).
        num_episodes: size of the index space, ``len(source)`` (default 100_000).
        seed_salt: a non-negative int mixed into every world seed (default 0). Sources with different
            salts draw independent worlds, e.g. train with 0 and test with 1.

    Raises:
        ConfigError: an option has the wrong type or range; the message says which and how to fix it.
    """

    name = "synthetic"

    def __init__(
        self,
        num_documents: int = 40,
        questions_per_episode: int | Literal["paper"] = 1,
        hops: int = 2,
        num_episodes: int = 100_000,
        seed_salt: int = 0,
    ) -> None:
        for label, value, low in (("num_documents", num_documents, 1), ("hops", hops, 1),
                                  ("num_episodes", num_episodes, 1), ("seed_salt", seed_salt, 0)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ConfigError(f"SyntheticSource({label}={value!r}): need an int >= {low}.")
        if hops > 3:
            raise ConfigError(f"SyntheticSource(hops={hops!r}): supported hops are 1, 2 and 3.")
        if questions_per_episode == "paper":
            max_questions = _MAX_PAPER_QUESTIONS
        elif (isinstance(questions_per_episode, (int, np.integer))
              and not isinstance(questions_per_episode, bool) and questions_per_episode >= 1):
            max_questions = int(questions_per_episode)
        else:
            raise ConfigError(
                f"SyntheticSource(questions_per_episode={questions_per_episode!r}): pass an int >= 1 "
                "or 'paper' (1 question with probability 0.5, else 2-10)."
            )
        if max_questions * hops > num_documents:
            raise ConfigError(
                f"SyntheticSource(num_documents={num_documents!r}) cannot hold {max_questions} "
                f"question(s) x {hops} evidence documents; pass num_documents >= "
                f"{max_questions * hops} or fewer questions / hops."
            )
        self.num_documents = int(num_documents)
        self.questions_per_episode = questions_per_episode
        self.hops = int(hops)
        self.num_episodes = int(num_episodes)
        self.seed_salt = int(seed_salt)

    def __len__(self) -> int:
        return self.num_episodes

    def __repr__(self) -> str:
        return (f"SyntheticSource(num_documents={self.num_documents}, questions_per_episode="
                f"{self.questions_per_episode!r}, hops={self.hops}, num_episodes={self.num_episodes}, "
                f"seed_salt={self.seed_salt})")

    def episode(self, index: int, rng: np.random.Generator) -> Episode:
        """Episode ``index``; ``rng`` picks the distractors and the document order."""
        return self.build(index, rng).episode

    def build(self, index: int, rng: np.random.Generator) -> SyntheticEpisode:
        """Episode ``index`` together with the facts, relation paths and entity chains behind it."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                or not 0 <= index < self.num_episodes:
            raise ConfigError(
                f"Synthetic episode index {index!r} is outside [0, {self.num_episodes}); pass an "
                "index in range or build the source with a larger num_episodes."
            )
        d = Draws(np.random.default_rng([self.seed_salt, int(index)]))
        names = Names(d)
        if self.questions_per_episode == "paper":
            n_questions = 1 if d.uniform() < 0.5 else d.integer(2, _MAX_PAPER_QUESTIONS)
        else:
            n_questions = int(self.questions_per_episode)

        paths, chains, questions, gold = [], [], [], []
        twins: list[_Doc] = []
        for _ in range(n_questions):
            path = PATHS[self.hops][d.index(len(PATHS[self.hops]))]
            kinds = [RELATIONS[path[0]].subject] + [RELATIONS[r].object for r in path]
            chain = [names.new(kind, strict=True) for kind in kinds]
            twin = [names.new(kind, like=name, strict=True) for kind, name in zip(kinds, chain, strict=True)]
            paths.append(path)
            chains.append(tuple(chain))
            questions.append(question_text(path, chain[0]))
            gold.append([_document(d, r, chain[k], chain[k + 1]) for k, r in enumerate(path)])
            twins.extend(_document(d, r, twin[k], twin[k + 1]) for k, r in enumerate(path))

        n_gold = n_questions * self.hops
        budget = self.num_documents - n_gold
        pool = self._pool(d, names, max(0, budget - len(twins)))
        documents = [doc for docs in gold for doc in docs] + self._distractors(rng, budget, twins, pool)
        order = rng.permutation(len(documents))
        shown = [documents[i] for i in order]
        texts = tuple(doc.text for doc in shown)
        episode = Episode(
            episode_id=f"synthetic/{self.seed_salt}/{index}",
            questions=tuple(questions),
            answers=tuple(chain[-1] for chain in chains),
            documents=texts,
            context=render_documents(texts),
            aliases=tuple(() for _ in questions),
            supporting=tuple(tuple(doc.text for doc in docs) for docs in gold),
        )
        return SyntheticEpisode(episode, tuple(doc.fact for doc in shown), tuple(paths), tuple(chains))

    def _pool(self, d: Draws, names: Names, needed: int) -> list[_Doc]:
        """Random single-fact documents, a quarter more than needed so that ``rng`` has a choice.

        Objects are reused with probability 0.3 (several people born in one city), which keeps the
        entity graph connected like a real corpus without ever giving a subject two documents.
        """
        relations = tuple(RELATIONS)
        objects: dict[str, list[str]] = {}
        pool = []
        for _ in range(needed + -(-needed // 4)):
            relation = relations[d.index(len(relations))]
            spec = RELATIONS[relation]
            seen = objects.setdefault(spec.object, [])
            if seen and d.uniform() < 0.3:
                obj = seen[d.index(len(seen))]
            else:
                obj = names.new(spec.object)
                seen.append(obj)
            pool.append(_document(d, relation, names.new(spec.subject), obj))
        return pool

    @staticmethod
    def _distractors(
        rng: np.random.Generator, budget: int, twins: list[_Doc], pool: list[_Doc]
    ) -> list[_Doc]:
        """``budget`` distractors: hard twins first (a random subset if they do not all fit), then pool."""
        if len(twins) >= budget:
            keep = np.sort(rng.choice(len(twins), size=budget, replace=False))
            return [twins[i] for i in keep]
        picks = np.sort(rng.choice(len(pool), size=budget - len(twins), replace=False))
        return twins + [pool[i] for i in picks]


_SENTENCE = re.compile(r"[^.]+\.")


def evidence_facts(episode: Episode) -> tuple[tuple[str, ...], ...]:
    """Per question, the fact sentence of each evidence document in hop order, verbatim.

    Pure: it needs only the :class:`Episode` of a :class:`SyntheticSource`. The fact sentence of
    evidence document k is its only sentence naming the next hop's entity (the title of document k+1,
    or the answer for the last one). An oracle that stores these sentences can answer every question;
    to find them in chunk text, test ``sentence in chunk``.

    Raises:
        ValueError: the episode was not built by :class:`SyntheticSource`.
    """
    result = []
    # Not strict: an episode without supporting documents (not built by SyntheticSource) gives ().
    for docs, answer in zip(episode.supporting, episode.answers, strict=False):
        targets = [doc.split("\n", 1)[0] for doc in docs[1:]] + [answer]
        facts = []
        for doc, target in zip(docs, targets, strict=True):
            body = doc.split("\n", 1)[1] if "\n" in doc else ""
            hits = [s.strip() for s in _SENTENCE.findall(body) if target in s]
            if len(hits) != 1:
                raise ValueError(
                    f"{episode.episode_id}: {len(hits)} sentences name {target!r} in an evidence "
                    "document; evidence_facts needs an episode built by SyntheticSource."
                )
            facts.append(hits[0])
        result.append(tuple(facts))
    return tuple(result)
