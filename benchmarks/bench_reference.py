"""The reference design side by side with ours, and ours against its embedding-only limit: the same
memory trace, the same embedder, designs interleaved, per-op and whole-trace ratios.

Usage:
    pip install -e '.[bench]'          # LangChain + faiss-cpu, for this script only (and torch, for
                                       # the reference's tensor filter)
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        python benchmarks/bench_reference.py [--episodes 8 64] [--repeats 3] [--json out.json]
        [--designs ours embedding_only]   # some designs only (ours is always one)

For each batch size, :func:`benchmarks.trace.make_trace` draws the paper's GRPO batch trace (8 prompts x
8 rollouts = 64 episodes, 30 turns, about 4 Creates, 0.3 Updates, 0.03 Deletes and one retrieval per
episode per turn). It runs through four designs (:mod:`benchmarks.reference_store`), each with its own
instance of the embedder: the reference (one LangChain FAISS store for the batch) filtering its
retrievals by a plain int and, as the reference code does, by a 0-d torch tensor; ours (a MemoryStore
per episode); and the embedding-only limit (ours' embedding calls and nothing else). The designs run
one after another in each repeat, in a rotating order, so every ratio is taken between runs minutes
apart on the same machine, and each ratio's median over the repeats is reported with its range.

Totals are CPU seconds of the timed operations (``time.process_time``); "at medians" weighs each
operation's median by its count (a busy machine preempts some operations for a whole time slice,
which moves totals far more than medians). Every ``embed`` call is timed too (``EmbedClock``), which
splits each operation's time into the embedder's and the store's own. Both reference variants and
ours must show the same lists (the same scores, best first; tied entries may differ): mismatches are
counted. The reference's retrieval grows with every entry any episode of the batch stores: the slope
of its retrieval time against the batch's store size is printed too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
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
from benchmarks.reference_store import (  # noqa: E402
    EmbeddingOnly,
    OurStores,
    ReferenceStore,
    reference_missing,
    torch_missing,
)
from benchmarks.trace import OPS, EmbedClock, PlayResult, TraceConfig, count_mismatches, make_trace, play  # noqa: E402

DESIGNS: dict[str, Callable[[Any, int], Any]] = {
    "reference_int": lambda embedder, episodes: ReferenceStore(embedder, filter_by="int"),
    "reference_tensor": lambda embedder, episodes: ReferenceStore(embedder, filter_by="tensor"),
    "ours": OurStores,
    "embedding_only": EmbeddingOnly,
}
#: The ratios reported: (name, numerator design, denominator design).
RATIOS = (("reference_int / ours", "reference_int", "ours"),
          ("reference_tensor / ours", "reference_tensor", "ours"),
          ("ours / embedding_only", "ours", "embedding_only"))


def compare(spec: str, episodes: int, turns: int = 30, seed: int = 0, repeats: int = 3,
            designs: tuple[str, ...] = tuple(DESIGNS)) -> dict[str, Any]:
    """Run one trace through ``designs``, interleaved, ``repeats`` times: totals, ratios, per-op rows."""
    config = TraceConfig(episodes=episodes, turns=turns, seed=seed)
    trace = make_trace(config)
    runs: dict[str, list[PlayResult]] = {name: [] for name in designs}
    for repeat in range(repeats):
        for name in designs[repeat % len(designs):] + designs[: repeat % len(designs)]:
            embedder = EmbedClock(build_embedder(spec, cache_size=4096))
            embedder.embed(["warm up"])  # model load outside the timings
            embedder.cpu = 0.0
            runs[name].append(play(DESIGNS[name](embedder, episodes), trace, config.top_k, clock=embedder))
    totals = {name: [_totals(result) for result in results] for name, results in runs.items()}
    row: dict[str, Any] = {"embedder": spec, "episodes": episodes, "turns": turns, "repeats": repeats,
                           "totals": totals, "ratios": _ratios(totals)}
    ours = _pooled(runs["ours"])
    for name in ("reference_int", "reference_tensor"):
        if name not in runs:
            continue
        ref = _pooled(runs[name])
        row[f"ops_{name}"] = {"cpu": _op_rows(ref.cpu_seconds, ours.cpu_seconds),
                              "store_cpu": _op_rows(ref.store_cpu_seconds(), ours.store_cpu_seconds())}
        first, embedder = runs[name][0], build_embedder(spec, cache_size=4096)
        row[f"mismatched_lists_{name}"] = count_mismatches(first, runs["ours"][0], embedder)
        row[f"{name}_retrieve_cpu_us_per_entry"] = _slope_us(first.size_at_retrieve, first.cpu_seconds["retrieve"])
    row["retrievals"] = len(runs["ours"][0].retrieved)
    row["final_store_size"] = runs["ours"][0].size_at_retrieve[-1]
    return row


def _totals(result: PlayResult) -> dict[str, float]:
    """One run's CPU and wall totals, its work at the operations' medians, and its embedder's CPU."""
    cpu = [t for op in OPS for t in result.cpu_seconds[op]]
    at_medians = sum(len(result.cpu_seconds[op]) * float(np.median(result.cpu_seconds[op]))
                     for op in OPS if result.cpu_seconds[op])
    return {"cpu_s": float(np.sum(cpu)), "wall_s": float(sum(np.sum(result.seconds[op]) for op in OPS)),
            "cpu_at_medians_s": at_medians, "embed_cpu_s": result.clock.cpu if result.clock else 0.0,
            "operations": len(cpu)}


def _ratios(totals: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Each ratio of :data:`RATIOS` per repeat (both designs from the same repeat), with its median and range;
    and ours against its own embedder's time."""
    out: dict[str, dict[str, Any]] = {}
    for label, top, bottom in RATIOS:
        if top not in totals or bottom not in totals:
            continue
        for key in ("cpu_s", "cpu_at_medians_s"):
            values = [a[key] / b[key] for a, b in zip(totals[top], totals[bottom], strict=True)]
            out[f"{label} ({key})"] = _spread(values)
    out["ours / its embedder's CPU (cpu_s)"] = _spread([t["cpu_s"] / t["embed_cpu_s"] for t in totals["ours"]])
    return out


def _spread(values: list[float]) -> dict[str, Any]:
    return {"median": float(np.median(values)), "min": min(values), "max": max(values), "per_repeat": values}


def _pooled(results: list[PlayResult]) -> PlayResult:
    """The repeats' operation times pooled into one result (for per-op medians)."""
    pooled = PlayResult()
    for result in results:
        for op in OPS:
            pooled.cpu_seconds[op] += result.cpu_seconds[op]
            pooled.embed_cpu_seconds[op] += result.embed_cpu_seconds[op]
    return pooled


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
    headers = ["embedder", "episodes", "ratio", "median", "min", "max"]
    body = [[row["embedder"], row["episodes"], label, r["median"], r["min"], r["max"]]
            for row in rows for label, r in row["ratios"].items()]
    blocks = ["Ratios of whole-trace CPU totals (per repeat, designs interleaved)\n" + format_table(headers, body)]
    headers = ["embedder", "episodes", "design", "CPU s", "CPU at medians s", "embedder CPU s", "wall s"]
    body = [[row["embedder"], row["episodes"], name, *(float(np.median([t[key] for t in runs])) for key in
             ("cpu_s", "cpu_at_medians_s", "embed_cpu_s", "wall_s"))]
            for row in rows for name, runs in row["totals"].items()]
    blocks.append("Totals, medians over the repeats\n" + format_table(headers, body))
    headers = ["embedder", "episodes", "op", "count", "reference p50 us", "ours p50 us", "ratio p50",
               "reference s", "ours s", "ratio of totals"]
    for name in ("reference_int", "reference_tensor"):
        for key, clock in (("cpu", "CPU"), ("store_cpu", "CPU without the embedder's")):
            body = [[row["embedder"], row["episodes"], op, r["count"], r["reference_p50_us"], r["ours_p50_us"],
                     r["ratio_p50"], r["reference_total_s"], r["ours_total_s"], r["ratio"]]
                    for row in rows if f"ops_{name}" in row for op, r in row[f"ops_{name}"][key].items()]
            if body:
                blocks.append(f"{name} against ours, {clock} time, repeats pooled\n" + format_table(headers, body))
    notes = [f"{row['embedder']} x {row['episodes']} episodes: {row['final_store_size']:,} entries at the end; "
             + "; ".join(f"{name}: retrieval +{row[f'{name}_retrieve_cpu_us_per_entry']:.2f} us CPU per stored "
                         f"entry, {row[f'mismatched_lists_{name}']} of {row['retrievals']:,} lists differ from ours"
                         for name in ("reference_int", "reference_tensor") if f"ops_{name}" in row)
             for row in rows]
    return "\n\n".join(blocks) + "\n" + "\n".join(notes)


def threads() -> dict[str, Any]:
    """The thread settings the numbers were measured under."""
    record: dict[str, Any] = {var: os.environ.get(var) for var in
                              ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    try:
        import faiss
        record["faiss_omp_max_threads"] = faiss.omp_get_max_threads()
    except ImportError:
        pass
    try:
        import torch
        record["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return record


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--episodes", type=int, nargs="+", default=[8, 64], help="batch sizes (episodes), one row each")
    parser.add_argument("--embedders", nargs="+", default=["hashing"], help="embedder specs every design uses")
    parser.add_argument("--turns", type=int, default=30, help="turns of the trace")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every design, interleaved")
    parser.add_argument("--torch-threads", type=int, default=TORCH_THREADS, help=TORCH_THREADS_HELP)
    parser.add_argument("--designs", nargs="+", choices=tuple(DESIGNS), default=list(DESIGNS),
                        help="designs to run (ours and embedding_only alone: the store's own ratio, in seconds)")
    args = parser.parse_args(argv)
    designs = tuple(args.designs)
    if "ours" not in designs:
        parser.error("--designs must include ours (every ratio and list check is against it)")
    if (why := reference_missing()) and any(name.startswith("reference") for name in designs):
        print(why)
        return 0
    if why := torch_missing():
        print(why)
        designs = tuple(name for name in designs if name != "reference_tensor")
    else:
        limit_torch_threads(args.torch_threads)
    start = machine()
    rows = []
    for spec in args.embedders:
        if spec == "minilm" and (why := minilm_missing()):
            print(why)
            continue
        rows += [compare(spec, episodes, args.turns, repeats=args.repeats, designs=designs)
                 for episodes in args.episodes]
    print(table(rows))
    write_json(args.json, {"machine_at_start": start, "threads": threads(), "rows": rows})
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
