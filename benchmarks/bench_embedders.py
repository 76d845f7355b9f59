"""Time the embedders on a memory-store-like workload: embed N entries, then re-embed them and a query.

Usage::

    python benchmarks/bench_embedders.py [--entries 200] [--embedders hashing minilm] [--data-dir ../shared/data]
                                         [--json out.json]

Entries are HotpotQA dev paragraphs when the data folder holds them, else synthetic sentences. The
second pass shows what the per-instance LRU cache saves (memory entries and the persistent query are
re-embedded every turn).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import exit_on_errors  # noqa: E402
from atommem_env.embedders import make_embedder  # noqa: E402
from benchmarks.common import DATA_DIR, benchmark_parser, format_table, write_json  # noqa: E402

HOTPOTQA_DEV = Path("hotpotqa") / "hotpot_dev_distractor_subset.json"
QUERY = "Which magazine was started first, Arthur's Magazine or First for Women?"


def entries(n: int, data_dir: Path) -> list[str]:
    """``n`` distinct texts of memory-entry size: HotpotQA paragraphs if ``data_dir`` has them."""
    path = data_dir / HOTPOTQA_DEV
    if path.exists():
        texts: dict[str, None] = {}
        for record in json.loads(path.read_text(encoding="utf-8")):
            for title, sentences in record["context"]:
                texts.setdefault(f"{title}\n{''.join(sentences)}", None)
        if len(texts) >= n:
            return list(texts)[:n]
    return [f"Entry {i}: the person number {i} was born in city {i % 37} in the year {1900 + i}." for i in range(n)]


def measure(spec: str, texts: list[str]) -> dict[str, Any]:
    """Load time, a first pass over ``texts`` and a repeated pass plus the query, in seconds."""
    embedder = make_embedder(spec)
    start = time.perf_counter()
    embedder.embed(["warm up"])  # model load, outside the timings below
    load = time.perf_counter() - start
    start = time.perf_counter()
    embedder.embed(texts)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    embedder.embed(texts)
    embedder.embed([QUERY], query=True)
    warm = time.perf_counter() - start
    return {"embedder": embedder.name, "dim": embedder.dim, "entries": len(texts), "load_s": load,
            "first_pass_ms": cold * 1000, "repeat_and_query_ms": warm * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--entries", type=int, default=200, help="texts embedded per pass")
    parser.add_argument("--embedders", nargs="+", default=["hashing", "minilm"], help="embedder specs to time")
    parser.add_argument("--data-dir", default=str(DATA_DIR), help="the benchmark data folder (HotpotQA paragraphs)")
    args = parser.parse_args(argv)
    texts = entries(args.entries, Path(args.data_dir).resolve())
    rows = [measure(spec, texts) for spec in args.embedders]
    keys = ("embedder", "dim", "entries", "load_s", "first_pass_ms", "repeat_and_query_ms")
    print(format_table(keys, [[row[k] for k in keys] for row in rows]))
    write_json(args.json, {"rows": rows})
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
