"""The reference design side by side with ours: the same memory trace, the same embedder, per-op ratios.

Usage:
    pip install -e '.[bench]'          # LangChain + faiss-cpu, for this script only
    python benchmarks/bench_reference.py [--episodes 8 64] [--embedders hashing minilm] [--json out.json]

For each batch size, :func:`benchmarks.trace.make_trace` draws the paper's GRPO batch trace (8 prompts x
8 rollouts = 64 episodes, 30 turns, about 4 Creates, 0.3 Updates, 0.03 Deletes and one retrieval per
episode per turn); it runs through :class:`~benchmarks.reference_store.ReferenceStore` (one LangChain
FAISS store for the batch) and :class:`~benchmarks.reference_store.OurStores` (a MemoryStore per
episode). The table gives each operation's median time on both designs with their ratio, and the
total times with theirs; "all" is the whole trace, and "at medians" weighs each operation's median by
its count (the issue's targets are medians: on a busy machine the totals also carry preemptions). Both
stores must show the same lists (the same scores, best first; tied entries may differ): mismatches are
counted and printed.
The reference's retrieval cost grows with every entry stored by any episode of the batch: the slope
of its retrieval time against the batch's store size is printed too. Both designs pay the same
embedder for every Create, Update and new query; the third table takes that time out (it is
measured inside every embed call), leaving each store's own work.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import exit_on_errors  # noqa: E402
from benchmarks.bench_env import (  # noqa: E402
    TORCH_THREADS,
    TORCH_THREADS_HELP,
    build_embedder,
    limit_torch_threads,
    minilm_missing,
)
from benchmarks.common import benchmark_parser, format_table, machine, write_json  # noqa: E402
from benchmarks.reference_store import OurStores, ReferenceStore, reference_missing  # noqa: E402
from benchmarks.trace import OPS, EmbedClock, TraceConfig, count_mismatches, make_trace, play  # noqa: E402


def compare(spec: str, episodes: int, turns: int = 30, seed: int = 0) -> dict[str, Any]:
    """Run one trace through both designs; per-op counts, totals and the ratio reference / ours."""
    config = TraceConfig(episodes=episodes, turns=turns, seed=seed)
    trace = make_trace(config)
    results = {}
    for name, make in (("reference", lambda e: ReferenceStore(e)), ("ours", lambda e: OurStores(e, episodes))):
        embedder = EmbedClock(build_embedder(spec, cache_size=4096))
        embedder.embed(["warm up"])  # model load outside the timings
        results[name] = play(make(embedder), trace, config.top_k, clock=embedder)
    ref, ours = results["reference"], results["ours"]
    return {"embedder": spec, "episodes": episodes, "turns": turns,
            "ops": _op_rows(ref.seconds, ours.seconds), "ops_cpu": _op_rows(ref.cpu_seconds, ours.cpu_seconds),
            "ops_store_cpu": _op_rows(ref.store_cpu_seconds(), ours.store_cpu_seconds()),
            "mismatched_lists": count_mismatches(ref, ours, build_embedder(spec, cache_size=4096)),
            "retrievals": len(ref.retrieved), "final_store_size": ref.size_at_retrieve[-1],
            "reference_retrieve_us_per_entry": _slope_us(ref.size_at_retrieve, ref.seconds["retrieve"]),
            "reference_retrieve_cpu_us_per_entry": _slope_us(ref.size_at_retrieve, ref.cpu_seconds["retrieve"])}


def _op_rows(ref: dict[str, list[float]], ours: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Per operation and for the whole trace ("all"): counts, medians, totals and their ratios."""
    ops = {op: _op_row(ref[op], ours[op]) for op in OPS}
    ops["all"] = _op_row([t for op in OPS for t in ref[op]], [t for op in OPS for t in ours[op]])
    # The trace's work at each operation's median time: a busy machine preempts some operations for a
    # whole time slice, which moves the totals (means) far more than the medians. The "all" row's
    # p50 is the count-weighted mean of the operations' medians.
    total = ops["all"]
    for side in ("reference", "ours"):
        work = sum(ops[op]["count"] * ops[op][f"{side}_p50_us"] for op in OPS if ops[op]["count"]) / 1e6
        total[f"{side}_work_at_p50_s"], total[f"{side}_p50_us"] = work, 1e6 * work / max(1, total["count"])
    total["ratio_p50"] = total["reference_work_at_p50_s"] / total["ours_work_at_p50_s"]
    return ops


def _op_row(ref: list[float], ours: list[float]) -> dict[str, Any]:
    ref_total, our_total = float(np.sum(ref)), float(np.sum(ours))
    ref_p50, our_p50 = (float(np.median(x)) * 1e6 if len(x) else float("nan") for x in (ref, ours))
    return {"count": len(ref), "count_ours": len(ours), "reference_total_s": ref_total,
            "ours_total_s": our_total, "reference_mean_us": 1e6 * ref_total / max(1, len(ref)),
            "ours_mean_us": 1e6 * our_total / max(1, len(ours)), "reference_p50_us": ref_p50,
            "ours_p50_us": our_p50, "ratio": ref_total / our_total if our_total > 0 else float("nan"),
            "ratio_p50": ref_p50 / our_p50}


def _slope_us(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of the reference's retrieval time against the batch's store size (µs/entry)."""
    x = np.asarray(sizes, dtype=float)
    if np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, np.asarray(seconds) * 1e6, 1)[0])


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["embedder", "episodes", "op", "count", "reference p50 us", "ours p50 us", "ratio p50",
               "reference s", "ours s", "ratio of totals"]
    blocks = []
    for key, clock in (("ops", "wall"), ("ops_cpu", "CPU"), ("ops_store_cpu", "CPU without the embedder's")):
        body = []
        for row in rows:
            for op, r in row[key].items():
                body.append([row["embedder"], row["episodes"], op, r["count"], r["reference_p50_us"],
                             r["ours_p50_us"], r["ratio_p50"], r["reference_total_s"], r["ours_total_s"], r["ratio"]])
        blocks.append(f"{clock} time\n" + format_table(headers, body))
    notes = [f"{row['embedder']} x {row['episodes']} episodes: {row['final_store_size']:,} entries at the end, "
             f"reference retrieval +{row['reference_retrieve_us_per_entry']:.2f} us wall, "
             f"+{row['reference_retrieve_cpu_us_per_entry']:.2f} us CPU per stored entry, "
             f"{row['mismatched_lists']} of {row['retrievals']:,} retrieved lists differ" for row in rows]
    return "\n\n".join(blocks) + "\n" + "\n".join(notes)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--episodes", type=int, nargs="+", default=[8, 64], help="batch sizes (episodes), one row each")
    parser.add_argument("--embedders", nargs="+", default=["hashing"], help="embedder specs both designs use")
    parser.add_argument("--turns", type=int, default=30, help="turns of the trace")
    parser.add_argument("--torch-threads", type=int, default=TORCH_THREADS, help=TORCH_THREADS_HELP)
    args = parser.parse_args(argv)
    if why := reference_missing():
        print(why)
        return 0
    if "minilm" in args.embedders:
        limit_torch_threads(args.torch_threads)
    start = machine()
    rows = []
    for spec in args.embedders:
        if spec == "minilm" and (why := minilm_missing()):
            print(why)
            continue
        rows += [compare(spec, episodes, args.turns) for episodes in args.episodes]
    print(table(rows))
    write_json(args.json, {"machine_at_start": start, "rows": rows})
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
