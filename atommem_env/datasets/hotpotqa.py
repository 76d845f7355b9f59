"""HotpotQA (distractor setting) adapter: the official JSON list -> :class:`QASample`.

Official files: ``hotpot_dev_distractor_v1.json`` and ``hotpot_train_v1.1.json``. Each record has
``question, answer, supporting_facts [[title, sent_id]], context [[title, [sentences]]]`` and usually
``_id`` (absent in some train copies: a stable ``{split}-{position}`` id is derived). 2WikiMultihopQA
uses the same shape, so :func:`parse_titled_sentence_records` serves both adapters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ._records import (
    ParsedFile,
    answer_of,
    check_format,
    finish,
    read_records,
    record_id,
    render_paragraph,
    require_list_of_records,
)
from .base import QASample

BENCHMARK = "hotpotqa"
_REQUIRED = ("question", "answer", "context")


def titled_pairs(value: Any, text_keys: Sequence[str] = ("sentences", "content")) -> list[tuple[Any, Any]] | None:
    """Normalize ``[[title, x], ...]`` and the hub's ``{"title": [...], "sentences": [...]}`` shapes.

    Returns None when ``value`` is neither shape, so the caller can skip the record with a reason.
    """
    if isinstance(value, Mapping):
        titles = value.get("title")
        others = next((value[k] for k in (*text_keys, "sent_id") if k in value), None)
        if isinstance(titles, list) and isinstance(others, list) and len(titles) == len(others):
            return list(zip(titles, others, strict=True))
        return None
    if not isinstance(value, list):
        return None
    pairs = []
    for item in value:
        if isinstance(item, Mapping):
            text = next((item[k] for k in text_keys if k in item), None)
            pairs.append((item.get("title"), text))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.append((item[0], item[1]))
        else:
            return None
    return pairs


def _paragraphs(context: Any) -> tuple[str, ...] | None:
    pairs = titled_pairs(context)
    if not pairs:
        return None
    rendered = []
    for title, sentences in pairs:
        if not isinstance(title, str):
            return None
        if isinstance(sentences, str):
            sentences = [sentences]
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            return None
        # No separator between sentences: HotpotQA sentences carry their own leading space, and the
        # reference joins them with "" (2Wiki included), which the long-context pool must match.
        rendered.append(render_paragraph(title, "".join(sentences)))
    return tuple(rendered)


def _supporting_titles(value: Any) -> tuple[str, ...] | None:
    """The titles of the gold paragraphs, or None when ``supporting_facts`` is missing or malformed.

    Without them the check that the gold paragraphs are in the record's own context cannot run, so
    such a record is skipped rather than passed unchecked.
    """
    pairs = titled_pairs(value, text_keys=("sent_id",))
    if not pairs or not all(isinstance(title, str) and title for title, _ in pairs):
        return None
    return tuple(dict.fromkeys(title for title, _ in pairs))


def parse_titled_sentence_records(records: list[Mapping[str, Any]], source: str, benchmark: str,
                                  id_prefix: str) -> ParsedFile:
    """Turn HotpotQA-shaped records (HotpotQA, 2WikiMultihopQA) into samples, skipping bad ones.

    Args:
        records: the file's records (already checked to be the right format).
        source: the file or hub name, for messages.
        benchmark: the benchmark name, for messages.
        id_prefix: prefix of derived ids for records without ``_id`` (e.g. the split name).
    """
    samples: list[QASample] = []
    skipped: list[tuple[str, str]] = []
    orphans: list[str] = []
    for position, record in enumerate(records):
        rid = record_id(record, position, id_prefix)
        if not isinstance(record, Mapping):
            skipped.append((rid, "not a JSON object"))
            continue
        question, answer = record.get("question"), answer_of(record)
        paragraphs = _paragraphs(record.get("context"))
        if not isinstance(question, str) or not question.strip():
            skipped.append((rid, "no question"))
        elif answer is None:
            skipped.append((rid, "no answer"))
        elif not paragraphs:
            skipped.append((rid, "no paragraphs in 'context'"))
        elif (supporting := _supporting_titles(record.get("supporting_facts"))) is None:
            skipped.append((rid, "no well-formed 'supporting_facts' ([[title, sentence index], ...])"))
        else:
            present = {p.split("\n", 1)[0] for p in paragraphs}
            missing = [t for t in supporting if t not in present]
            if missing:
                # The official distractor files always hold the gold paragraphs; some derived copies
                # swapped in retrieved ones. Such a question cannot be answered from its episode.
                skipped.append((rid, f"supporting paragraph(s) {missing} not in 'context'"))
                orphans.extend(paragraphs)  # real paragraphs of the split: still distractors
                continue
            samples.append(QASample(id=rid, question=question, answer=answer, paragraphs=paragraphs,
                                    supporting_titles=supporting))
    return finish(source, samples, skipped, benchmark, orphans)


def parse_hotpotqa(records: Any, source: str, id_prefix: str = "hotpotqa") -> ParsedFile:
    """Parse HotpotQA records (from a file or the hub) into samples.

    Raises:
        DataError: the records are not HotpotQA records (e.g. a MuSiQue or 2WikiMultihopQA file).
    """
    records = require_list_of_records(records, source, BENCHMARK)
    check_format(records, source, BENCHMARK, _REQUIRED)
    return parse_titled_sentence_records(records, source, BENCHMARK, id_prefix)


def load_hotpotqa(path: str | os.PathLike, id_prefix: str = "hotpotqa") -> ParsedFile:
    """Read and parse an official HotpotQA JSON file (uncached; see :mod:`.sources` for the cache)."""
    return parse_hotpotqa(read_records(path), str(path), id_prefix)
