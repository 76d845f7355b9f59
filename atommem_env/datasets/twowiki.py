"""2WikiMultihopQA adapter: the official ``dev.json`` / ``train.json`` JSON list -> :class:`QASample`.

The records follow HotpotQA's shape (``_id, question, answer, supporting_facts, context [[title,
[sentences]]]``) plus ``type`` and ``evidences``; sentences are joined without separator, as the
reference does.
"""

from __future__ import annotations

import os
from typing import Any

from ._records import ParsedFile, check_format, read_records, require_list_of_records
from .hotpotqa import parse_titled_sentence_records

BENCHMARK = "2wikimultihopqa"
_REQUIRED = ("question", "answer", "context")


def parse_twowiki(records: Any, source: str, id_prefix: str = "2wikimultihopqa") -> ParsedFile:
    """Parse 2WikiMultihopQA records (from a file or the hub) into samples.

    Raises:
        DataError: the records are not 2WikiMultihopQA-shaped (e.g. a MuSiQue file).
    """
    records = require_list_of_records(records, source, BENCHMARK)
    check_format(records, source, BENCHMARK, _REQUIRED)
    return parse_titled_sentence_records(records, source, BENCHMARK, id_prefix)


def load_twowiki(path: str | os.PathLike, id_prefix: str = "2wikimultihopqa") -> ParsedFile:
    """Read and parse an official 2WikiMultihopQA JSON file (uncached)."""
    return parse_twowiki(read_records(path), str(path), id_prefix)
