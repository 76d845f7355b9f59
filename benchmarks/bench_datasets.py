"""Dataset loading and episode building speed against the shared real data.

Usage:
    python benchmarks/bench_datasets.py [--data-dir ../shared/data] [--repeats 15] [--json out.json]

Measures, per benchmark (dev split): the first-load time (read + parse + pool/index, in a fresh
process so no cache helps), the median time of ``episode(index, rng)`` at 200/400/800 documents
over several indices, and the median ``env.reset`` of the registered ids (build, centre truncation,
chunking with the default tokenizer, first observation). Prints a table; ``--json`` also writes the numbers.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import gymnasium as gym  # noqa: E402

import atommem_env  # noqa: E402,F401  (registers the ids)
from agents.training.cli import exit_on_errors  # noqa: E402
from atommem_env.datasets import load_benchmark  # noqa: E402
from atommem_env.registration import BENCHMARKS as DISPLAY_NAMES  # noqa: E402
from benchmarks.common import DATA_DIR, benchmark_parser, machine, write_json  # noqa: E402

BENCHMARKS = ("hotpotqa", "2wikimultihopqa", "musique")
SIZES = (200, 400, 800)

_FIRST_LOAD = """
import sys, time
from atommem_env.datasets import load_benchmark
t = time.perf_counter()
load_benchmark(sys.argv[1], data_dir=sys.argv[2], num_documents=200)
print(time.perf_counter() - t)
"""


def first_load_seconds(benchmark: str, data_dir: str) -> float:
    """Read + parse + pool/index time of a split in a fresh process (package import excluded)."""
    out = subprocess.run([sys.executable, "-c", _FIRST_LOAD, benchmark, data_dir], check=True,
                         capture_output=True, text=True, cwd=REPO)
    return float(out.stdout.strip().splitlines()[-1])


def build_seconds(benchmark: str, data_dir: str, num_documents: int, repeats: int) -> list[float]:
    """Wall time of ``episode()`` for ``repeats`` indices spread over the split (cache warm)."""
    source = load_benchmark(benchmark, data_dir=data_dir, num_documents=num_documents)
    times = []
    for i in range(repeats):
        index = (i * 37) % len(source)
        rng = np.random.default_rng([0, index])
        t = time.perf_counter()
        source.episode(index, rng)
        times.append(time.perf_counter() - t)
    return times


def reset_seconds(benchmark: str, data_dir: str, num_documents: int, repeats: int) -> list[float]:
    """Wall time of ``env.reset`` (episode build + centre truncation + chunking + first observation)."""
    display = next(d for d, name in DISPLAY_NAMES.items() if name == benchmark)
    env = gym.make(f"AtomMem-{display}-{num_documents}-v0", data_dir=data_dir)
    size = len(env.unwrapped.source)
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        env.reset(seed=i, options={"index": (i * 37) % size})
        times.append(time.perf_counter() - t)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--data-dir", default=str(DATA_DIR), help="the benchmark data folder")
    parser.add_argument("--repeats", type=int, default=15, help="episode indices timed per size (the median)")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"machine_at_start": machine(), "rows": []}
    print(f"{'benchmark':<16} {'questions':>9} {'pool':>6} {'first load s':>12} "
          + " ".join(f"{f'build@{n} ms':>12}" for n in SIZES)
          + " " + " ".join(f"{f'reset@{n} ms':>12}" for n in SIZES))
    for benchmark in BENCHMARKS:
        source = load_benchmark(benchmark, data_dir=args.data_dir, num_documents=200)
        row = {"benchmark": benchmark, "questions": source.num_questions, "pool": source.pool_size,
               "first_load_s": first_load_seconds(benchmark, args.data_dir), "build_median_ms": {},
               "reset_median_ms": {}}
        for n in SIZES:
            builds = build_seconds(benchmark, args.data_dir, n, args.repeats)
            resets = reset_seconds(benchmark, args.data_dir, n, args.repeats)
            row["build_median_ms"][n] = 1000 * statistics.median(builds)
            row["reset_median_ms"][n] = 1000 * statistics.median(resets)
        results["rows"].append(row)
        print(f"{benchmark:<16} {row['questions']:>9} {row['pool']:>6} {row['first_load_s']:>12.3f} "
              + " ".join(f"{row['build_median_ms'][n]:>12.2f}" for n in SIZES)
              + " ".join(f"{row['reset_median_ms'][n]:>12.1f}" for n in SIZES))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
