"""MuSiQue-Answerable adapter: ``musique_ans_v1.0_{dev,train}.jsonl`` -> :class:`QASample`.

Records: ``id, paragraphs [{idx, title, paragraph_text, is_supporting}], question, answer,
answer_aliases, answerable``. JSON-list copies of the same records are accepted too. Unanswerable
records (``answerable: false``, only in the ``musique_full`` files) are skipped: they have no gold.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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

BENCHMARK = "musique"
_REQUIRED = ("question", "answer", "paragraphs")


def _paragraphs(value: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """Rendered paragraphs and supporting titles, or None if ``paragraphs`` is malformed/empty."""
    if not isinstance(value, list) or not value:
        return None
    rendered, supporting = [], []
    for para in value:
        if not isinstance(para, Mapping):
            return None
        title, text = para.get("title"), para.get("paragraph_text")
        if not isinstance(title, str) or not isinstance(text, str):
            return None
        rendered.append(render_paragraph(title, text))
        if para.get("is_supporting"):
            supporting.append(title)
    return tuple(rendered), tuple(dict.fromkeys(supporting))


def _aliases(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(a for a in value if isinstance(a, str) and a.strip())


def parse_musique(records: Any, source: str, id_prefix: str = "musique") -> ParsedFile:
    """Parse MuSiQue records (from a file or the hub) into samples, skipping bad ones.

    Raises:
        DataError: the records are not MuSiQue records (e.g. a HotpotQA file).
    """
    records = require_list_of_records(records, source, BENCHMARK)
    check_format(records, source, BENCHMARK, _REQUIRED)
    samples: list[QASample] = []
    skipped: list[tuple[str, str]] = []
    for position, record in enumerate(records):
        rid = record_id(record, position, id_prefix)
        if not isinstance(record, Mapping):
            skipped.append((rid, "not a JSON object"))
            continue
        question, answer = record.get("question"), answer_of(record)
        parsed = _paragraphs(record.get("paragraphs"))
        if record.get("answerable") is False:
            skipped.append((rid, "unanswerable"))
        elif not isinstance(question, str) or not question.strip():
            skipped.append((rid, "no question"))
        elif answer is None:
            skipped.append((rid, "no answer"))
        elif parsed is None:
            skipped.append((rid, "no paragraphs"))
        else:
            paragraphs, supporting = parsed
            samples.append(QASample(id=rid, question=question, answer=answer, paragraphs=paragraphs,
                                    aliases=_aliases(record.get("answer_aliases")),
                                    supporting_titles=supporting))
    return finish(source, samples, skipped, BENCHMARK)


def load_musique(path: str | os.PathLike, id_prefix: str = "musique") -> ParsedFile:
    """Read and parse an official MuSiQue JSONL (or JSON list) file (uncached)."""
    return parse_musique(read_records(path), str(path), id_prefix)
