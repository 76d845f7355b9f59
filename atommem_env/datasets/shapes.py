"""Which benchmark a file's records come from, told by the marks each benchmark's records carry.

HotpotQA and 2WikiMultihopQA records share one shape (``question, answer, supporting_facts,
context``), so a HotpotQA file given as 2Wiki data would parse into plausible episodes and its scores
would be reported under a 2Wiki id. The benchmarks still differ in marks of their own:

- HotpotQA: ``level`` (easy / medium / hard) and the type ``bridge``;
- 2WikiMultihopQA: ``evidences`` and the types ``compositional``, ``inference``, ``bridge_comparison``
  (its ``comparison`` is HotpotQA's too, so it tells nothing);
- MuSiQue: ``paragraphs``, ``question_decomposition`` and ``answerable``.

A file is refused when its records carry another benchmark's marks and none of the requested one's.
Records with no mark at all (derived copies that dropped the extra fields) are accepted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import DataError

#: benchmark -> (keys only its records have, values of ``type`` only its records have)
_MARKS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hotpotqa": (("level",), ("bridge",)),
    "2wikimultihopqa": (("evidences",), ("compositional", "inference", "bridge_comparison")),
    "musique": (("paragraphs", "question_decomposition", "answerable"), ()),
}
DISPLAY = {"hotpotqa": "HotpotQA", "2wikimultihopqa": "2WikiMultihopQA", "musique": "MuSiQue"}

#: Records looked at: enough to see a benchmark's marks, cheap for a 90,000-record train file.
_SAMPLE = 200


def marks_of(record: Any) -> dict[str, list[str]]:
    """The benchmarks whose marks ``record`` carries, each with the marks found (e.g. ``"type 'bridge'"``)."""
    found: dict[str, list[str]] = {}
    if not isinstance(record, Mapping):
        return found
    for benchmark, (keys, types) in _MARKS.items():
        hits = [f"{key!r}" for key in keys if key in record]
        if record.get("type") in types:
            hits.append(f"type {record['type']!r}")
        if hits:
            found[benchmark] = hits
    return found


def expected_marks(benchmark: str) -> str:
    """What a record of ``benchmark`` carries, in words, for messages."""
    keys, types = _MARKS[benchmark]
    words = " and ".join(f"{k!r}" for k in keys)
    if types:
        words += (" and type " if len(types) == 1 else " and types ") + ", ".join(f"{t!r}" for t in types)
    return f"{DISPLAY[benchmark]} records carry {words}"


def check_benchmark(records: Sequence[Any], source: str, benchmark: str) -> None:
    """Refuse records that carry another benchmark's marks and none of ``benchmark``'s.

    Raises:
        DataError: naming the file, the benchmark it looks like (with the marks seen) and what was expected.
    """
    sample = records[:_SAMPLE]
    seen: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    for record in sample:
        for other, hits in marks_of(record).items():
            seen[other] += 1
            examples.setdefault(other, hits)
    if seen[benchmark] or not seen:
        return
    other, count = seen.most_common(1)[0]
    raise DataError(
        f"Dataset file {source!r} looks like a {DISPLAY[other]} file, not {DISPLAY[benchmark]}: "
        f"{count} of its first {len(sample)} records have {', '.join(examples[other])}, and none has the "
        f"marks of {DISPLAY[benchmark]} ({expected_marks(benchmark)}). Load it with benchmark={other!r}, "
        f"or pass the official {DISPLAY[benchmark]} file."
    )
