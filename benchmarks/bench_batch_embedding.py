"""Embedding a batch of envs together: one embedding call per turn and kind vs one per text.

Usage:
    python benchmarks/bench_batch_embedding.py [--batches 8 64] [--turns 30] [--repeats 3]
                                               [--embedders hashing minilm] [--torch-threads 1] [--json out.json]

Each run plays one batch of ``B`` envs through :func:`agents.training.rollout.rollout` for exactly
``--turns`` reading turns (the turn budget ends them), on ``B`` distinct episodes, or with ``--group 8``
on ``B / 8`` episodes of 8 rollouts each (as the paper's GRPO batch: rollouts of one prompt read the
same chunk each turn, so some of their entries coincide, and one call embeds those once). A scripted
policy answers in the paper's late-RL operation mix (``bench_env.response``: a scratchpad write and 4
Creates every turn, an Update in 30% of turns, a new query in 3 of every 10, a Delete in 3%), drawn
from each observation and the env's place in the batch, so both designs see the same responses.
Two designs, on the same episodes:

- ``per_env``: ``embed_together=False``, each env's store embeds its texts as it steps (one call per
  Create, Update and new query; a caching model embedder also gets each response's entries in one call);
- ``batched``: the default, every turn's texts of all ``B`` envs embedded in one call per kind
  (:class:`atommem_env.batch_embedding.BatchEmbedding`).

All envs share one embedder (as the envs of a Ray rollout worker share one service client). The
embedding time is the wall and CPU time of every call a store makes to get vectors: to the embedder
itself (per_env), or to the shared ``TurnCache`` plus each turn's ``hold`` (batched); "calls" and
"texts" count what reaches the embedder (for a caching model embedder, per_env's Creates that the
response's prefetch already cached count again, served from its cache). Designs alternate
(their order flips every repeat) and each ratio is taken inside one repeat; a first unrecorded run of
each warms the hashing embedder's slot cache. The trajectories of the two designs are compared too.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from agents.base import Completion  # noqa: E402
from agents.training.cli import exit_on_errors  # noqa: E402
from agents.training.rollout import rollout  # noqa: E402
from atommem_env.datasets.synthetic import SyntheticSource  # noqa: E402
from atommem_env.embedders import HashingEmbedder  # noqa: E402
from atommem_env.embedders.batch import TurnCache  # noqa: E402
from atommem_env.env import MemoryQAEnv  # noqa: E402
from atommem_env.observation import Progress  # noqa: E402
from benchmarks.bench_env import (  # noqa: E402
    TORCH_THREADS,
    TORCH_THREADS_HELP,
    build_embedder,
    changes_query,
    limit_torch_threads,
    minilm_missing,
    response,
)
from benchmarks.common import benchmark_parser, format_table, machine, median, write_json  # noqa: E402

DESIGNS = ("per_env", "batched")
CHUNK_TOKENS = 1000  # about 20 synthetic documents per chunk: the policy picks 5 of them per turn
_DOCS_PER_TURN = 24  # documents per chunk, with room: every episode keeps reading for all its turns
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
class Clock:
    """Adds up the wall and CPU time of embedding work; a span inside another counts once."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self._depth = 0

    def timed(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._depth:
            return fn(*args, **kwargs)
        self._depth += 1
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            self._depth -= 1
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu


class ClockedEmbedder:
    """The shared embedder, its ``embed`` calls timed by ``clock`` and counted."""

    def __init__(self, base: Any, clock: Clock) -> None:
        self.base, self.clock, self.name, self.dim = base, clock, base.name, base.dim
        self.sparse = getattr(base, "sparse", False)
        self.calls = self.texts = 0
        self.sent: list[tuple[list[str], bool]] = []  # every call's texts (for split_costs)

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Any:
        self.calls += 1
        self.texts += len(texts)
        self.sent.append((list(texts), query))
        return self.clock.timed(self.base.embed, texts, query=query)


class WarmClockedEmbedder(ClockedEmbedder):
    """Around a caching embedder: a store's ``prefetch`` of a response's entries is timed too."""

    def warm(self, texts: Sequence[str], *, query: bool = False) -> None:
        self.embed(texts, query=query)  # what the embedder's own warm does: embed and cache


@contextmanager
def clocked_turn_caches(clock: Clock) -> Iterator[None]:
    """Time what the stores of the batched design ask their shared TurnCache (held rows served, misses
    embedded) and each turn's ``hold``, not only the calls that reach the embedder."""
    originals = {name: getattr(TurnCache, name) for name in ("embed", "hold", "warm")}

    def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
        return lambda self, *args, **kwargs: clock.timed(fn, self, *args, **kwargs)

    for name, fn in originals.items():
        setattr(TurnCache, name, timed(fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(TurnCache, name, fn)


class MixPolicy:
    """Responses in the paper's operation mix, drawn from each observation and its env's place in the
    batch (the same in both designs: every env plays one episode, all of them for every turn)."""

    name = "paper_mix"

    def act(self, observations: Sequence[dict[str, Any]]) -> list[Completion]:
        return [Completion(self._response(obs, slot)) for slot, obs in enumerate(observations)]

    @staticmethod
    def _response(obs: dict[str, Any], slot: int) -> str:
        rng = np.random.default_rng([zlib.crc32(obs["user"].encode("utf-8")), slot])
        return response(obs["chunk"], rng, changes_query(int(obs["progress"][Progress.TURN])))


def play(embedder: ClockedEmbedder, batch: int, turns: int, together: bool,
         group: int = 1) -> tuple[dict[str, Any], list[Any]]:
    """One batch of ``batch`` envs playing ``turns`` turns, ``group`` of them on each episode (a GRPO group:
    same episode, same seed, its own draws); the totals and the trajectories."""
    clock = embedder.clock = Clock()
    embedder.calls = embedder.texts = 0
    embedder.sent = []
    getattr(embedder.base, "clear_cache", lambda: None)()  # a model embedder starts each run cold
    source = SyntheticSource(num_documents=_DOCS_PER_TURN * (turns + 1), num_episodes=batch)
    episodes = [i // group for i in range(batch)]

    def make_env() -> MemoryQAEnv:
        return MemoryQAEnv(source, embedder=embedder, chunk_tokens=CHUNK_TOKENS, max_turns=turns,
                           max_context_tokens=10**8)

    wall, cpu = time.perf_counter(), time.process_time()
    with clocked_turn_caches(clock):
        trajectories = rollout(make_env, MixPolicy(), episodes, indices=episodes, batch_size=batch,
                               embed_together=together)
    totals = {"rollout_wall_s": time.perf_counter() - wall, "rollout_cpu_s": time.process_time() - cpu,
              "embed_wall_s": clock.wall, "embed_cpu_s": clock.cpu, "embed_calls": embedder.calls,
              "embedded_texts": embedder.texts, "turns": sum(len(t.turns) for t in trajectories)}
    return totals, [t.to_json() for t in trajectories]


def measure(spec: str, batch: int, turns: int, repeats: int, group: int) -> dict[str, Any]:
    """Both designs ``repeats`` times, alternating; per-repeat ratios per_env / batched."""
    base = build_embedder(spec, cache_size=4096)
    embedder = (WarmClockedEmbedder if hasattr(base, "warm") else ClockedEmbedder)(base, Clock())
    for design in DESIGNS:  # warm-up: slot caches, model load, first allocations
        play(embedder, batch, min(turns, 3), design == "batched", group)
    runs: list[dict[str, Any]] = []
    identical = True
    for repeat in range(repeats):
        order = DESIGNS if repeat % 2 == 0 else DESIGNS[::-1]
        played = {}
        for design in order:
            totals, played[design] = play(embedder, batch, turns, design == "batched", group)
            runs.append({"repeat": repeat, "design": design, **totals})
            if design == "batched":
                batched_calls = embedder.sent
        identical &= played["per_env"] == played["batched"]
    row = {"embedder": spec, "batch": batch, "group": group, "turns_per_episode": turns, "repeats": repeats,
           "identical_trajectories": identical, "runs": runs, "ratios": ratios(runs)}
    if isinstance(base, HashingEmbedder):
        row["split_us_per_text"] = split_costs(base, batched_calls)
    return row


def split_costs(embedder: HashingEmbedder, calls: list[tuple[list[str], bool]]) -> dict[str, float]:
    """Where the hashing embedder's time goes, replaying the batched design's calls outside the rollout
    (warm slot cache, best of 3, CPU microseconds per text): the features and their slots alone, text by
    text (Python: regex, stopwords, bigrams, slot lookups) and for a call's texts at once (as a call of
    8 texts or more finds them), one call per text, one call per turn and kind."""
    texts = [text for batch, _ in calls for text in batch]

    def best(fn: Callable[[], Any]) -> float:
        times = []
        for _ in range(3):
            cpu = time.process_time()
            fn()
            times.append(time.process_time() - cpu)
        return 1e6 * min(times) / len(texts)

    return {"texts": len(texts),
            "features_and_slots": best(lambda: [embedder._cells(t) for t in texts]),
            "features_and_slots_per_call": best(lambda: [embedder._batch_codes(batch) for batch, _ in calls]),
            "one_call_per_text": best(lambda: [embedder.embed([t]) for t in texts]),
            "one_call_per_turn": best(lambda: [embedder.embed(batch, query=q) for batch, q in calls])}


def ratios(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """per_env / batched of each measure, per repeat, and their median."""
    out: dict[str, Any] = {}
    for key in ("embed_cpu_s", "embed_wall_s", "rollout_wall_s", "rollout_cpu_s", "embed_calls"):
        by_repeat: dict[int, dict[str, float]] = {}
        for run in runs:
            by_repeat.setdefault(run["repeat"], {})[run["design"]] = run[key]
        values = [r["per_env"] / r["batched"] for r in by_repeat.values()]
        out[key] = {"per_repeat": values, "median": median(values)}
    return out


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["embedder", "B", "group", "turns", "design", "embed CPU s", "embed wall s", "calls", "texts",
               "rollout wall s", "embed CPU ratio", "embed wall ratio", "rollout wall ratio", "identical"]
    body = []
    for row in rows:
        for design in DESIGNS:
            mine = [r for r in row["runs"] if r["design"] == design]
            first = design == DESIGNS[0]
            body.append([
                row["embedder"], row["batch"], row["group"], row["turns_per_episode"], design,
                median([r["embed_cpu_s"] for r in mine]), median([r["embed_wall_s"] for r in mine]),
                mine[0]["embed_calls"], mine[0]["embedded_texts"], median([r["rollout_wall_s"] for r in mine]),
                f"{row['ratios']['embed_cpu_s']['median']:.2f}x" if first else "",
                f"{row['ratios']['embed_wall_s']['median']:.2f}x" if first else "",
                f"{row['ratios']['rollout_wall_s']['median']:.2f}x" if first else "",
                str(row["identical_trajectories"]) if first else "",
            ])
    return ("medians over repeats; ratios: per_env / batched, the median of the per-repeat ratios\n"
            + format_table(headers, body))


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 64], help="envs per batch, one row each")
    parser.add_argument("--turns", type=int, default=30, help="reading turns per episode")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each design per row")
    parser.add_argument("--group", type=int, default=1,
                        help="envs per episode (1: all distinct; 8: the paper's GRPO batch, 8 rollouts a prompt)")
    parser.add_argument("--embedders", nargs="+", default=["hashing"], help="embedder specs (hashing, minilm)")
    parser.add_argument("--torch-threads", type=int, default=TORCH_THREADS, help=TORCH_THREADS_HELP)
    args = parser.parse_args(argv)
    if "minilm" in args.embedders:
        if why := minilm_missing():
            print(why)
            args.embedders = [e for e in args.embedders if e != "minilm"]
        else:
            limit_torch_threads(args.torch_threads)
    start = machine()
    rows = [measure(spec, batch, args.turns, args.repeats, args.group)
            for spec in args.embedders for batch in args.batches]
    print(table(rows))
    for row in rows:
        if "split_us_per_text" in row:
            print(f"B={row['batch']}: CPU us per text, replayed outside the rollout: {row['split_us_per_text']}")
    write_json(args.json, {"machine_at_start": start, "torch_threads": args.torch_threads,
                           "thread_env": {name: os.environ.get(name) for name in THREAD_VARS},
                           "command": " ".join(sys.argv), "rows": rows})
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
