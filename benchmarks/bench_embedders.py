"""Time the embedders on a memory-store-like workload: embed N entries, then re-embed them and a query.

Usage::

    PYTHONPATH=. python benchmarks/bench_embedders.py [--entries 200] [--embedders hashing minilm]

Entries are HotpotQA dev paragraphs when the shared data is present, else synthetic sentences. The
second pass shows what the per-instance LRU cache saves (memory entries and the persistent query are
re-embedded every turn).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from atommem_env.embedders import make_embedder

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hotpotqa"
DATA = DATA / "hotpot_dev_distractor_subset.json"


def entries(n: int) -> list[str]:
    """``n`` distinct texts of memory-entry size."""
    if DATA.resolve().exists():
        texts: dict[str, None] = {}
        for record in json.loads(DATA.resolve().read_text(encoding="utf-8")):
            for title, sentences in record["context"]:
                texts.setdefault(f"{title}\n{''.join(sentences)}", None)
        if len(texts) >= n:
            return list(texts)[:n]
    return [f"Entry {i}: the person number {i} was born in city {i % 37} in the year {1900 + i}." for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--embedders", nargs="+", default=["hashing", "minilm"])
    args = parser.parse_args()
    texts = entries(args.entries)
    query = "Which magazine was started first, Arthur's Magazine or First for Women?"
    for spec in args.embedders:
        embedder = make_embedder(spec)
        start = time.perf_counter()
        embedder.embed(["warm up"])  # model load, outside the timings below
        load = time.perf_counter() - start
        start = time.perf_counter()
        embedder.embed(texts)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        embedder.embed(texts)
        embedder.embed([query], query=True)
        warm = time.perf_counter() - start
        print(
            f"{embedder.name:24s} dim={embedder.dim:5d} load={load:6.2f}s "
            f"first pass {len(texts)} entries={cold * 1000:8.1f} ms  repeat+query={warm * 1000:8.1f} ms"
        )


if __name__ == "__main__":
    main()
