"""Long-context episodes as the paper builds its benchmarks (SPEC section 6).

One episode = one group of consecutive questions of a split. Its documents are all the questions' own
paragraphs plus distractors drawn uniformly without replacement from the rest of the split's pool, up
to ``num_documents``, shuffled and rendered ``"Document i:\\n..."``.

Determinism: the grouping is drawn once per split from a fixed seed (so episode ``i`` always holds the
same questions), and everything else comes from the ``rng`` passed to :meth:`episode`. Only numpy
Generators and sorted orders are used -- no ``hash()``, no set iteration -- so the same
``(index, rng state)`` gives the same episode on any machine.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .base import Episode, render_documents
from .corpus import SplitCorpus
from .sources import DataLocation, canonical_benchmark, canonical_split, load_corpus

#: The reference shuffles every sample with ``random.Random(4)``; ``shuffle="fixed"`` reproduces it.
REFERENCE_SHUFFLE_SEED = 4
#: Seed of the once-per-split grouping; part of the benchmark definition, not of an episode.
DEFAULT_GROUPING_SEED = 0
#: The reference's ``random.seed(42)`` before ``generate_random_chunks`` (processing_multiquery.py).
REFERENCE_GROUPING_SEED = 42
_SHUFFLES = ("episode", "fixed")
_GROUPINGS = ("atommem", "reference")
_SHARED = ("once", "repeated")


def group_questions(num_questions: int, mode: str | int = "paper",
                    seed: int = DEFAULT_GROUPING_SEED) -> tuple[tuple[int, int], ...]:
    """Partition ``range(num_questions)`` into consecutive ``(start, stop)`` groups.

    Args:
        num_questions: how many questions the split has (after any cap).
        mode: ``"paper"``: size 1 with probability 0.5, else uniform in 2..10 (the reference's
            distribution); ``"single"``: one question per group; an int ``k``: groups of ``k``.
            The last group is cut short at the end of the split, as in the reference.
        seed: seed of the paper-mode draw; the partition is a pure function of the arguments.

    Raises:
        ConfigError: an unknown mode or a non-positive size.
    """
    if mode == "single":
        mode = 1
    if isinstance(mode, bool) or not (mode == "paper" or isinstance(mode, (int, np.integer))):
        raise ConfigError(f"questions_per_episode={mode!r} is invalid; use 'paper', 'single' or a positive int.")
    if mode != "paper" and int(mode) < 1:
        raise ConfigError(f"questions_per_episode={mode!r} must be at least 1.")
    rng = np.random.default_rng(seed)
    groups, start = [], 0
    while start < num_questions:
        if mode == "paper":
            size = 1 if rng.random() < 0.5 else int(rng.integers(2, 11))
        else:
            size = int(mode)
        stop = min(start + size, num_questions)
        groups.append((start, stop))
        start = stop
    return tuple(groups)


def reference_groups(num_questions: int) -> tuple[tuple[int, int], ...]:
    """The reference's paper-mode partition: Python's ``random`` seeded 42, one weighted
    ``choices`` per group (size 1 with weight 0.5, 2..10 with 0.5/9 each). The same distribution as
    :func:`group_questions`, but other groups: episode i holds other questions."""
    rng = random.Random(REFERENCE_GROUPING_SEED)
    sizes, weights = [1, *range(2, 11)], [0.5] + [0.5 / 9] * 9
    groups, start = [], 0
    while start < num_questions:
        stop = min(start + rng.choices(sizes, weights=weights, k=1)[0], num_questions)
        groups.append((start, stop))
        start = stop
    return tuple(groups)


def _group_own(corpus: SplitCorpus, start: int, stop: int) -> np.ndarray:
    """Pool indices of the group's own paragraphs, unique, in question then paragraph order."""
    if stop - start == 1:
        return corpus.own[start]
    merged = np.concatenate(corpus.own[start:stop])
    _, first = np.unique(merged, return_index=True)
    return merged[np.sort(first)]


def _supporting(paragraphs: tuple[str, ...], titles: tuple[str, ...]) -> tuple[str, ...]:
    """The rendered paragraphs whose title is a supporting title (datasets mark support by title)."""
    return tuple(dict.fromkeys(p for p in paragraphs if p.split("\n", 1)[0] in titles))


class LongContextSource:
    """An :class:`~atommem_env.datasets.base.EpisodeSource` of long-context multi-hop QA episodes.

    Build it with :func:`atommem_env.datasets.load_benchmark`. It pickles as its constructor arguments,
    so a copy unpickled in another process re-reads the data through that process's cache instead of
    carrying the paragraph pool along.

    Attributes:
        name: e.g. ``"hotpotqa/dev/200"``.
        groups: the ``(start, stop)`` question range of each episode.
    """

    def __init__(self, benchmark: str, split: str, location: DataLocation, num_documents: int = 200,
                 questions_per_episode: str | int = "paper", shuffle: str = "episode",
                 max_questions: int | None = None, grouping_seed: int = DEFAULT_GROUPING_SEED,
                 grouping: str = "atommem", shared_paragraphs: str = "once") -> None:
        self.benchmark, self.split = canonical_benchmark(benchmark), canonical_split(split)
        if isinstance(num_documents, bool) or not isinstance(num_documents, (int, np.integer)) or num_documents < 1:
            raise ConfigError(f"num_documents={num_documents!r} must be a positive int (the paper uses 200/400/800).")
        if shuffle not in _SHUFFLES:
            raise ConfigError(f"shuffle={shuffle!r} is invalid; use 'episode' (default: shuffle with the "
                              f"episode rng) or 'fixed' (the reference's seed {REFERENCE_SHUFFLE_SEED} for "
                              "every episode).")
        if grouping not in _GROUPINGS or shared_paragraphs not in _SHARED:
            raise ConfigError(f"grouping={grouping!r} / shared_paragraphs={shared_paragraphs!r}: use one of "
                              f"{_GROUPINGS} / {_SHARED} (see atommem_env.protocol).")
        whole = isinstance(max_questions, (int, np.integer)) and not isinstance(max_questions, bool)
        if max_questions is not None and not (whole and max_questions >= 1):
            raise ConfigError(f"max_questions={max_questions!r} must be a positive int or None.")
        self.location, self.num_documents = location, int(num_documents)
        self.questions_per_episode, self.shuffle = questions_per_episode, shuffle
        self.max_questions, self.grouping_seed = max_questions, grouping_seed
        self.grouping, self.shared_paragraphs = grouping, shared_paragraphs
        self.name = f"{self.benchmark}/{self.split}/{self.num_documents}"
        self._corpus = load_corpus(self.benchmark, self.split, location)
        n = len(self._corpus.samples) if max_questions is None else min(int(max_questions), len(self._corpus.samples))
        self.num_questions = n
        if grouping == "reference" and questions_per_episode == "paper":
            self.groups = reference_groups(n)
        else:
            self.groups = group_questions(n, questions_per_episode, grouping_seed)
        self._check_sizes()

    def _check_sizes(self) -> None:
        pool, n_docs, where = len(self._corpus.pool), self.num_documents, self._corpus.sources
        if pool < n_docs:
            raise DataError(
                f"{self.name}: the split has only {pool} unique paragraphs (from {list(where)}), fewer than "
                f"num_documents={n_docs}. Use a smaller num_documents or the full official split file."
            )
        for index, (start, stop) in enumerate(self.groups):
            own = len(_group_own(self._corpus, start, stop))
            if own > n_docs:
                raise ConfigError(
                    f"{self.name}: episode {index} (questions {start}..{stop - 1}) has {own} own paragraphs, "
                    f"more than num_documents={n_docs}. Use a larger num_documents, or a smaller "
                    "questions_per_episode (e.g. 'single')."
                )

    def __len__(self) -> int:
        return len(self.groups)

    @property
    def pool_size(self) -> int:
        """How many unique paragraphs the split's pool has."""
        return len(self._corpus.pool)

    @property
    def corpus(self) -> SplitCorpus:
        """The parsed split (questions, pool, skipped records), shared with every source of the split."""
        return self._corpus

    def question_ids(self, index: int) -> tuple[str, ...]:
        """The dataset ids of episode ``index``'s questions."""
        start, stop = self.groups[self._check_index(index)]
        return tuple(s.id for s in self._corpus.samples[start:stop])

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(self):
            raise ConfigError(f"Episode index {index!r} is out of range: {self.name} has {len(self)} "
                              f"episodes (0..{len(self) - 1}).")
        return int(index)

    def episode(self, index: int, rng: np.random.Generator) -> Episode:
        """Build episode ``index``; a pure function of ``index`` and the state of ``rng``.

        Draws from ``rng``: the distractors, then (with ``shuffle="episode"``) the document order.
        With ``shared_paragraphs="repeated"`` (the reference) a paragraph of two questions of the group
        appears twice, in the place of the last distractors drawn, so the rng draws are the same.
        """
        start, stop = self.groups[self._check_index(index)]
        corpus, n_docs = self._corpus, self.num_documents
        own = _group_own(corpus, start, stop)
        free = np.ones(len(corpus.pool), dtype=bool)
        free[own] = False
        candidates = np.flatnonzero(free)
        distractors = candidates[rng.choice(len(candidates), size=n_docs - len(own), replace=False)]
        if self.shared_paragraphs == "repeated" and stop - start > 1:
            own = np.concatenate(corpus.own[start:stop])  # the reference's curr_docs, repeats kept
            distractors = distractors[: max(0, n_docs - len(own))]
        chosen = np.concatenate([own, distractors]).tolist()
        if self.shuffle == "episode":
            chosen = [chosen[i] for i in rng.permutation(len(chosen))]
        else:
            # Python's Mersenne Twister with an int seed is the same on every platform; it gives the
            # reference's exact permutation (own paragraphs first, then distractors, as it does).
            random.Random(REFERENCE_SHUFFLE_SEED).shuffle(chosen)
        documents = tuple(corpus.pool[i] for i in chosen)
        samples = corpus.samples[start:stop]
        return Episode(
            episode_id=f"{self.name}/{index}",
            questions=tuple(s.question for s in samples),
            answers=tuple(s.answer for s in samples),
            documents=documents,
            context=render_documents(documents),
            aliases=tuple(s.aliases for s in samples),
            supporting=tuple(_supporting(s.paragraphs, s.supporting_titles) for s in samples),
        )

    def _args(self) -> tuple[Any, ...]:
        return (self.benchmark, self.split, self.location, self.num_documents, self.questions_per_episode,
                self.shuffle, self.max_questions, self.grouping_seed, self.grouping, self.shared_paragraphs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (LongContextSource, self._args())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LongContextSource) and self._args() == other._args()

    def __hash__(self) -> int:
        return hash(self._args())

    def __repr__(self) -> str:
        return (f"LongContextSource({self.name!r}, episodes={len(self)}, questions={self.num_questions}, "
                f"pool={self.pool_size}, questions_per_episode={self.questions_per_episode!r}, "
                f"shuffle={self.shuffle!r}, data={self.location.describe()!r})")
