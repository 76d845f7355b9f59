"""Scripted baselines' own time against the env's, per HotpotQA episode, with the text matcher before and
after issue #19 (one regex per (name, text) pair, against one substring search per name).

Usage:
    OMP_NUM_THREADS=1 python benchmarks/bench_scripted.py [--documents 800] [--episodes 3] [--repeats 2]
                                     [--policies heuristic heuristic-scratchpad] [--json out.json]

Each policy plays each episode once per repeat with each matcher, the two matchers alternating which
goes first. Timed apart: the policy's ``act`` calls, and the env's ``reset`` and ``step`` calls (CPU time
and wall time). "before" swaps :func:`regex_mentions`, the matcher the scripted baselines used before
issue #19, into :mod:`agents.text` (text by text, as its callers did); every run checks that both
matchers produce the same responses turn by turn, and the JSON records it. Contexts are not
centre-cut (as in bench_episode.py). Needs the HotpotQA dev file; skips with a message when it is absent.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import BASELINES  # noqa: E402
from agents import text as T  # noqa: E402
from agents.training.cli import exit_on_errors  # noqa: E402
from atommem_env.env import MemoryQAEnv  # noqa: E402
from atommem_env.errors import DataError  # noqa: E402
from benchmarks.bench_episode import make_env  # noqa: E402
from benchmarks.common import DATA_DIR, benchmark_parser, format_table, machine, median, write_json  # noqa: E402

MATCHERS = ("before", "after")


def regex_mentions(text: str, names: Sequence[str]) -> bool:
    """The scripted baselines' ``mentions`` before issue #19, kept as the reference for the new one."""
    lowered = f" {text.lower()} "
    return any(re.search(rf"(?<!\w){re.escape(n.lower())}(?!\w)", lowered) for n in names if n)


@contextmanager
def matcher(name: str) -> Iterator[None]:
    """Within the block, :mod:`agents.text` matches names with the ``before`` or the ``after`` matcher."""
    if name not in MATCHERS:
        raise ValueError(f"matcher {name!r}: pass one of {MATCHERS}")
    saved = T.mentions, T.mentioning
    if name == "before":
        T.mentions = regex_mentions
        T.mentioning = lambda texts, names: [regex_mentions(text, names) for text in texts]
    try:
        yield
    finally:
        T.mentions, T.mentioning = saved


def play(env: MemoryQAEnv, policy_name: str, index: int) -> dict[str, Any]:
    """One episode: the policy's and the env's CPU and wall seconds, and a digest of the responses."""
    policy = BASELINES[policy_name]()
    clocks = {"policy_s": 0.0, "policy_cpu_s": 0.0, "env_s": 0.0, "env_cpu_s": 0.0}

    def timed(side: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        start, start_cpu = time.perf_counter(), time.process_time()
        out = call(*args, **kwargs)
        clocks[f"{side}_s"] += time.perf_counter() - start
        clocks[f"{side}_cpu_s"] += time.process_time() - start_cpu
        return out

    obs, _ = timed("env", env.reset, seed=index, options={"index": index})
    digest, turns, done = hashlib.sha256(), 0, False
    while not done:
        response = timed("policy", policy.act, [obs])[0].text
        digest.update(response.encode() + b"\0")
        obs, _, terminated, truncated, info = timed("env", env.step, response)
        turns, done = turns + 1, terminated or truncated
    return {"policy": policy_name, "index": index, "turns": turns, "responses_sha256": digest.hexdigest(), **clocks}


def measure(env: MemoryQAEnv, policies: Sequence[str], episodes: int, repeats: int) -> list[dict[str, Any]]:
    """Every (policy, episode, repeat) played with both matchers, alternating which goes first."""
    runs = []
    for repeat in range(repeats):
        for episode in range(episodes):
            index = (episode * 37) % len(env.source)
            for policy in policies:
                order = MATCHERS if (repeat + episode) % 2 == 0 else MATCHERS[::-1]
                for name in order:
                    with matcher(name):
                        runs.append({"matcher": name, "repeat": repeat, **play(env, policy, index)})
    return runs


def rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per (policy, matcher), and whether both matchers played every episode identically."""
    out = []
    for policy in dict.fromkeys(r["policy"] for r in runs):
        mine = [r for r in runs if r["policy"] == policy]
        digests = {(r["index"], r["matcher"]): r["responses_sha256"] for r in mine}
        identical = all(digests[(i, "before")] == digests[(i, "after")] for i, _ in digests)
        for name in MATCHERS:
            chosen = [r for r in mine if r["matcher"] == name]
            row: dict[str, Any] = {"policy": policy, "matcher": name, "episodes": len(chosen),
                                   "identical_responses": identical}
            for clock in ("", "_cpu"):
                policy_s = median([r[f"policy{clock}_s"] for r in chosen])
                env_s = median([r[f"env{clock}_s"] for r in chosen])
                ratio = median([r[f"policy{clock}_s"] / r[f"env{clock}_s"] for r in chosen])
                row.update({f"policy{clock}_ms": 1e3 * policy_s, f"env{clock}_ms": 1e3 * env_s,
                            f"policy_over_env{clock}": ratio, f"episode_over_env{clock}": 1 + ratio})
            out.append(row)
    return out


def table(summary: list[dict[str, Any]]) -> str:
    headers = ["policy", "matcher", "runs", "policy CPU ms", "env CPU ms", "policy/env CPU", "episode/env CPU",
               "policy wall ms", "env wall ms", "episode/env wall", "identical"]
    body = [[r["policy"], r["matcher"], r["episodes"], r["policy_cpu_ms"], r["env_cpu_ms"], r["policy_over_env_cpu"],
             r["episode_over_env_cpu"], r["policy_ms"], r["env_ms"], r["episode_over_env"],
             "yes" if r["identical_responses"] else "NO"] for r in summary]
    return ("medians over runs; env = reset + every step; episode/env = (policy + env) / env, per run\n"
            + format_table(headers, body))


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--documents", type=int, default=800, help="documents per HotpotQA episode")
    parser.add_argument("--episodes", type=int, default=3, help="episodes (dev indices 0, 37, 74, ...)")
    parser.add_argument("--repeats", type=int, default=2, help="times each episode is played with each matcher")
    parser.add_argument("--policies", nargs="+", default=["heuristic", "heuristic-scratchpad"],
                        choices=sorted(BASELINES), help="scripted baselines timed")
    parser.add_argument("--data-dir", default=str(DATA_DIR), help="the benchmark data folder (HotpotQA)")
    args = parser.parse_args(argv)
    start = machine()
    try:
        env = make_env(args.data_dir, args.documents)
    except DataError as exc:
        print(f"Scripted-policy benchmark skipped: no HotpotQA data ({exc})".splitlines()[0])
        return 0
    runs = measure(env, args.policies, args.episodes, args.repeats)
    summary = rows(runs)
    print(table(summary))
    write_json(args.json, {"machine_at_start": start, "documents": args.documents, "rows": summary, "runs": runs})
    return 0 if all(r["identical_responses"] for r in summary) else 1


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
