"""A split's questions and its paragraph pool, indexed once so that episodes are cheap to build."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._records import ParsedFile
from .base import QASample

logger = logging.getLogger("atommem_env.datasets")


@dataclass(frozen=True, eq=False)
class SplitCorpus:
    """Everything the builder needs from one split, computed once per process.

    Attributes:
        benchmark: canonical benchmark name.
        split: canonical split name (``"dev"`` or ``"train"``).
        sources: the files (or hub names) the split was read from.
        samples: the usable questions in file order, unique by id.
        skipped: ``(source, record id, reason)`` of every skipped record.
        pool: every unique rendered paragraph of the split, sorted (a machine-independent order,
            as the reference's ``sorted(set(...))``).
        own: per sample, the pool indices of its own paragraphs (unique, in the sample's order).
    """

    benchmark: str
    split: str
    sources: tuple[str, ...]
    samples: tuple[QASample, ...]
    skipped: tuple[tuple[str, str, str], ...]
    pool: tuple[str, ...]
    own: tuple[np.ndarray, ...]


def make_corpus(benchmark: str, split: str, parsed: Sequence[ParsedFile]) -> SplitCorpus:
    """Merge parsed files into one split: drop repeated ids, build the pool and the index."""
    samples: list[QASample] = []
    skipped = [(p.source, rid, why) for p in parsed for rid, why in p.skipped]
    seen: set[str] = set()
    for part in parsed:
        for sample in part.samples:
            if sample.id in seen:
                skipped.append((part.source, sample.id, "duplicate id"))
                continue
            seen.add(sample.id)
            samples.append(sample)
    duplicates = sum(1 for s in skipped if s[2] == "duplicate id")
    if duplicates:
        logger.warning("Skipped %d repeated %s/%s question ids (kept the first occurrence).",
                       duplicates, benchmark, split)
    # dict.fromkeys keeps first occurrences; sorting then fixes an order that no hash seed can change.
    paragraphs = [p for s in samples for p in s.paragraphs] + [p for part in parsed for p in part.orphans]
    pool = tuple(sorted(dict.fromkeys(paragraphs)))
    index = {text: i for i, text in enumerate(pool)}
    own = tuple(np.fromiter(dict.fromkeys(index[p] for p in s.paragraphs), dtype=np.int64) for s in samples)
    return SplitCorpus(benchmark=benchmark, split=split, sources=tuple(p.source for p in parsed),
                       samples=tuple(samples), skipped=tuple(skipped), pool=pool, own=own)
