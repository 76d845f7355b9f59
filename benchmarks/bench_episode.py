"""Reset and full-episode env cost as the context grows: 200 to 3,200 HotpotQA documents.

Usage:
    python benchmarks/bench_episode.py [--documents 200 400 800 1600 3200] [--repeats 3]
                                       [--data-dir ../shared/data] [--json out.json]

Each episode is played to the end by the heuristic baseline (agents.scripted.HeuristicMemoryPolicy);
only the env's own calls are timed (reset, and every step), never the policy. Contexts are not
centre-truncated here (max_context_tokens is lifted), so that the cost can be read against the
whole text: the per-1K-token columns should stay flat if cost grows no faster than the text. (With
the default 160K-token cap, 1,600 and 3,200 documents would be cut to about 1,100.)
Needs the HotpotQA dev file; skips with a message when it is absent.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.scripted import HeuristicMemoryPolicy  # noqa: E402
from agents.training.cli import exit_on_errors  # noqa: E402
from atommem_env.datasets import load_benchmark  # noqa: E402
from atommem_env.env import MemoryQAEnv  # noqa: E402
from atommem_env.errors import DataError  # noqa: E402
from benchmarks.common import DATA_DIR, benchmark_parser, format_table, machine, median, write_json  # noqa: E402


def make_env(data_dir: str, documents: int) -> MemoryQAEnv:
    """A HotpotQA dev env at ``documents`` documents, defaults otherwise, without the context cap."""
    source = load_benchmark("hotpotqa", data_dir=data_dir, num_documents=documents)
    return MemoryQAEnv(source, max_context_tokens=10**8)


def play_episode(env: MemoryQAEnv, index: int, profiler: Any = None) -> dict[str, Any]:
    """One episode driven by the heuristic policy; env time only (``profiler`` sees only env calls)."""
    policy = HeuristicMemoryPolicy()

    def timed(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
        start, start_cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        out = call(*args, **kwargs)
        if profiler:
            profiler.disable()
        return out, time.perf_counter() - start, time.process_time() - start_cpu

    (obs, _), reset_s, reset_cpu = timed(env.reset, seed=index, options={"index": index})
    steps, steps_cpu, done, info = [], [], False, {}
    while not done:
        action = policy.act([obs])[0].text
        (obs, _, terminated, truncated, info), elapsed, cpu = timed(env.step, action)
        steps.append(elapsed)
        steps_cpu.append(cpu)
        done = terminated or truncated
    return {"reset_s": reset_s, "steps_s": sum(steps), "reset_cpu_s": reset_cpu, "steps_cpu_s": sum(steps_cpu),
            "turns": len(steps), "chunks": info["num_chunks"],
            "context_tokens": env.tokenizer.count(env._episode.context), "memory_size": info["memory_size"]}


def measure(data_dir: str, documents: int, repeats: int) -> dict[str, Any]:
    env = make_env(data_dir, documents)
    runs = [play_episode(env, (i * 37) % len(env.source)) for i in range(repeats)]
    tokens = median([r["context_tokens"] for r in runs])
    row = {"documents": documents, "repeats": repeats, "context_tokens": tokens,
           "chunks": median([r["chunks"] for r in runs]), "turns": median([r["turns"] for r in runs]), "runs": runs}
    for clock, suffix in (("", "_s"), ("cpu_", "_cpu_s")):  # wall time, then CPU time
        reset = median([r["reset" + suffix] for r in runs])
        episode = median([r["reset" + suffix] + r["steps" + suffix] for r in runs])
        row.update({f"{clock}reset_ms": 1e3 * reset, f"{clock}episode_ms": 1e3 * episode,
                    f"{clock}reset_us_per_1k_tokens": 1e9 * reset / tokens,
                    f"{clock}episode_us_per_1k_tokens": 1e9 * episode / tokens,
                    f"{clock}step_us": 1e6 * median([r["steps" + suffix] / r["turns"] for r in runs])})
    return row


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["documents", "tokens", "chunks", "turns", "clock", "reset ms", "episode ms", "reset us/1K tok",
               "episode us/1K tok", "mean step us"]
    body = [[r["documents"], int(r["context_tokens"]), int(r["chunks"]), int(r["turns"]), name,
             r[f"{c}reset_ms"], r[f"{c}episode_ms"], r[f"{c}reset_us_per_1k_tokens"],
             r[f"{c}episode_us_per_1k_tokens"], r[f"{c}step_us"]]
            for r in rows for c, name in (("", "wall"), ("cpu_", "CPU"))]
    return ("medians over episodes; env time only (reset + every step), policy excluded; CPU time leaves out\n"
            "time spent waiting for a core on a shared machine\n" + format_table(headers, body))


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--documents", type=int, nargs="+", default=[200, 400, 800, 1600, 3200],
                        help="documents per episode, one row each")
    parser.add_argument("--repeats", type=int, default=3, help="episodes played per row")
    parser.add_argument("--data-dir", default=str(DATA_DIR), help="the benchmark data folder (HotpotQA)")
    args = parser.parse_args(argv)
    start = machine()
    try:
        rows = [measure(args.data_dir, n, args.repeats) for n in args.documents]
    except DataError as exc:
        print(f"Episode benchmark skipped: no HotpotQA data ({exc})".splitlines()[0])
        return 0
    print(table(rows))
    write_json(args.json, {"machine_at_start": start, "rows": rows})
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
