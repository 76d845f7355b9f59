"""Reading official dataset files into plain records, and the bookkeeping of skipped records.

Shared by the three adapters: they differ in the record shape, not in how a file is read, how a bad
record is reported, or how a paragraph is rendered.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from .base import QASample
from .shapes import check_benchmark

logger = logging.getLogger("atommem_env.datasets")

#: How many skipped record ids a log line names before it only counts.
_MAX_NAMED_SKIPS = 5


@dataclass(frozen=True)
class ParsedFile:
    """The samples of one file (or one hub split) and the records that were skipped.

    Attributes:
        source: the file path, or ``"hub:<name>"`` for a hub split.
        samples: the usable questions, in file order.
        skipped: ``(record id, reason)`` for every record that was left out.
        orphans: paragraphs of skipped records that are still real paragraphs of the split; they
            stay in its distractor pool (SPEC: the pool is every unique paragraph of the split).
    """

    source: str
    samples: tuple[QASample, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    orphans: tuple[str, ...] = ()


def render_paragraph(title: str, text: str) -> str:
    """Render a paragraph as the reference does: ``"{title}\\n{text}"``."""
    return f"{title}\n{text}"


def read_records(path: str | os.PathLike) -> list[Any]:
    """Read a JSON list file or a JSON Lines file, whichever ``path`` holds.

    Both MuSiQue layouts exist in the wild (the official ``.jsonl`` and JSON-list copies), so the
    content decides, not the file name.

    Raises:
        DataError: the file is missing, unreadable, truncated, or neither a JSON list nor JSON Lines.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"No dataset file at {str(path)!r} (it does not exist or is not a file). "
            "Pass data_dir= / data_files= pointing at the official file, or set ATOMMEM_DATA_DIR."
        )
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark some editors add is dropped
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read dataset file {str(path)!r}: {exc}. Check the file is a UTF-8 text file.") from exc
    stripped = text.lstrip()
    if not stripped:
        raise DataError(f"Dataset file {str(path)!r} is empty. Download the official file again.")
    if stripped[0] == "[":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"Dataset file {str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                f"{exc.colno}); it is probably truncated. Download the official file again."
            ) from exc
        return data
    if stripped[0] == "{":
        return _read_json_lines(path, text)
    raise DataError(
        f"Dataset file {str(path)!r} is neither a JSON list nor JSON Lines (it starts with "
        f"{stripped[:20]!r}). Pass the official dataset file."
    )


def _read_json_lines(path: Path, text: str) -> list[Any]:
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            # A pretty-printed single object also lands here; the message covers both.
            raise DataError(
                f"Dataset file {str(path)!r}, line {lineno}, is not a JSON object ({exc.msg}); the file is "
                "truncated or not JSON Lines. Download the official file again."
            ) from exc
    return records


def record_id(record: Any, position: int, prefix: str) -> str:
    """The record's own id (``_id`` or ``id``), else a stable one from its position in the file."""
    if isinstance(record, Mapping):
        for key in ("_id", "id"):
            value = record.get(key)
            if isinstance(value, (str, int)) and str(value):
                return str(value)
    return f"{prefix}-{position}"


def require_list_of_records(data: Any, source: str, benchmark: str) -> list[Mapping[str, Any]]:
    """Check that a parsed file is a list of JSON objects (one per question)."""
    if not isinstance(data, list) or not data:
        kind = "an empty list" if isinstance(data, list) else type(data).__name__
        raise DataError(
            f"Dataset file {source!r} holds {kind}, not a list of {benchmark} records. "
            f"Pass the official {benchmark} file."
        )
    if not isinstance(data[0], Mapping):
        raise DataError(
            f"Dataset file {source!r}: records are {type(data[0]).__name__}, not JSON objects. "
            f"Pass the official {benchmark} file."
        )
    return data


def check_format(records: list[Mapping[str, Any]], source: str, benchmark: str, required: Iterable[str]) -> None:
    """Reject a file of another benchmark early, so it cannot turn into a pile of skipped records.

    Args:
        records: the file's records.
        source: the file, for the message.
        benchmark: the benchmark the caller asked for.
        required: keys a record of ``benchmark`` always has.
    """
    check_benchmark(records, source, benchmark)
    with_keys = sum(1 for r in records if isinstance(r, Mapping) and all(k in r for k in required))
    if with_keys == 0:
        raise DataError(
            f"Dataset file {source!r} has no {benchmark} records: none has all of {sorted(required)} "
            f"(first record keys: {sorted(records[0])[:8]}). Pass the official {benchmark} file."
        )


def finish(source: str, samples: list[QASample], skipped: list[tuple[str, str]], benchmark: str,
           orphans: Sequence[str] = ()) -> ParsedFile:
    """Log the skipped records once per file and refuse a file with nothing usable."""
    if skipped:
        named = ", ".join(f"{rid} ({why})" for rid, why in skipped[:_MAX_NAMED_SKIPS])
        more = f" and {len(skipped) - _MAX_NAMED_SKIPS} more" if len(skipped) > _MAX_NAMED_SKIPS else ""
        logger.warning("Skipped %d of %d %s records in %s: %s%s.", len(skipped), len(skipped) + len(samples),
                       benchmark, source, named, more)
    if not samples:
        raise DataError(
            f"Dataset file {source!r} has no usable {benchmark} records ({len(skipped)} skipped, e.g. "
            f"{skipped[0][0]!r}: {skipped[0][1]}). Pass the official {benchmark} file."
            if skipped else f"Dataset file {source!r} has no {benchmark} records. Pass the official file."
        )
    return ParsedFile(source=source, samples=tuple(samples), skipped=tuple(skipped), orphans=tuple(orphans))


def answer_of(record: Mapping[str, Any]) -> str | None:
    """The record's gold answer as a non-empty string, or None."""
    answer = record.get("answer")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, str) or not answer.strip():
        return None
    return answer
