"""Benchmark data: official-format adapters, data lookup, and the long-context episode builder.

The one entry point the environment needs is :func:`load_benchmark`. Importing this package reads no
file and downloads nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .base import Episode, EpisodeSource, QASample, render_documents
from .builder import DEFAULT_GROUPING_SEED, REFERENCE_SHUFFLE_SEED, LongContextSource, group_questions
from .sources import BENCHMARKS, ENV_VAR, DataLocation, HubSpec, canonical_benchmark, clear_cache, locate
from .synthetic import SyntheticSource, evidence_facts

__all__ = [
    "BENCHMARKS",
    "DEFAULT_GROUPING_SEED",
    "ENV_VAR",
    "REFERENCE_SHUFFLE_SEED",
    "DataLocation",
    "Episode",
    "EpisodeSource",
    "HubSpec",
    "LongContextSource",
    "QASample",
    "SyntheticSource",
    "canonical_benchmark",
    "clear_cache",
    "evidence_facts",
    "group_questions",
    "load_benchmark",
    "locate",
    "render_documents",
]


def load_benchmark(benchmark: str, *, split: str = "dev", num_documents: int = 200,
                   data_dir: str | os.PathLike | None = None, data_files: str | Sequence[str] | None = None,
                   questions_per_episode: str | int = "paper", shuffle: str = "episode",
                   max_questions: int | None = None, grouping: str = "atommem",
                   shared_paragraphs: str = "once") -> LongContextSource:
    """Long-context episodes of a multi-hop QA benchmark, built as the paper builds them.

    Args:
        benchmark: ``"hotpotqa"``, ``"2wikimultihopqa"`` or ``"musique"`` (case-insensitive).
        split: ``"dev"`` (alias ``"validation"``) or ``"train"``.
        num_documents: documents per episode (the paper: 200, 400, 800).
        data_dir: a folder with ``hotpotqa/``, ``2wikimultihopqa/``, ``musique/`` subfolders holding the
            official files (or the files directly inside).
        data_files: explicit file path(s) of the split; relative paths are taken relative to ``data_dir``.
        questions_per_episode: ``"paper"`` (1 with probability 0.5, else 2..10, drawn once per split),
            ``"single"``, or a fixed group size.
        shuffle: ``"episode"`` (shuffle with the episode rng) or ``"fixed"`` (the reference's seed 4).
        max_questions: use only the split's first ``max_questions`` questions (the reference: 600).
        grouping: ``"atommem"`` (numpy, seed 0) or ``"reference"`` (the reference's Python
            ``random.seed(42)``: other questions share an episode).
        shared_paragraphs: ``"once"`` or ``"repeated"`` (the reference: a paragraph of two questions
            of a group appears twice).

    Returns:
        A :class:`LongContextSource`; ``len()`` is the number of episodes and
        ``episode(index, rng)`` builds one.

    Raises:
        ConfigError: an unknown benchmark/split or an invalid option.
        DataError: no data found (the message lists every place tried), malformed files, or a split
            too small for ``num_documents``.
    """
    location = locate(benchmark, split, data_dir=data_dir, data_files=data_files)
    return LongContextSource(benchmark, split, location, num_documents=num_documents,
                             questions_per_episode=questions_per_episode, shuffle=shuffle,
                             max_questions=max_questions, grouping=grouping, shared_paragraphs=shared_paragraphs)
