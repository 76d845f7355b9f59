"""cProfile of the env's own work in one full HotpotQA episode (default 800 documents).

Usage:
    python benchmarks/profile_episode.py [--documents 800] [--index 0] [--top 25] [--out docs/profile-800.txt]

The episode is played by the heuristic baseline as in bench_episode.py; the profiler is on only
during ``env.reset`` and ``env.step``. Writes a header (command, machine, episode) and the top
entries by cumulative and by own time, in CPU time (so that a shared machine's waits for a core are
left out). cProfile adds a fixed cost to every Python call, so many small calls look heavier than
they are; read it for where time goes, and time fixes without it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import HelpFormatter, exit_on_errors  # noqa: E402
from atommem_env.errors import DataError  # noqa: E402
from benchmarks.bench_episode import make_env, play_episode  # noqa: E402
from benchmarks.common import DATA_DIR, REPO, machine  # noqa: E402


def profile(data_dir: str, documents: int, index: int, top: int) -> str:
    env = make_env(data_dir, documents)
    profiler = cProfile.Profile(time.process_time)  # CPU time: waits for a busy machine's cores left out
    run = play_episode(env, index, profiler)
    stats = io.StringIO()
    for key in ("cumulative", "tottime"):
        ps = pstats.Stats(profiler, stream=stats).strip_dirs().sort_stats(key)
        stats.write(f"--- top {top} by {key} time ---\n")
        ps.print_stats(top)
    header = (f"python benchmarks/profile_episode.py --documents {documents} --index {index} --top {top}\n"
              f"machine: {machine()}\n"
              f"episode: hotpotqa dev index {index}, {run['context_tokens']:,} tokens, {run['chunks']} chunks, "
              f"{run['turns']} turns, {run['memory_size']} entries at the end; env time without the profiler "
              f"is measured by bench_episode.py\n")
    return header + _relative_paths(stats.getvalue())


def _relative_paths(text: str) -> str:
    """Drop this machine's folders from the report so it reads the same on every checkout."""
    return text.replace(str(REPO) + "/", "").replace(sys.prefix + "/", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--documents", type=int, default=800, help="documents in the profiled episode")
    parser.add_argument("--index", type=int, default=0, help="the HotpotQA episode profiled")
    parser.add_argument("--top", type=int, default=25, help="functions listed, by cumulative time")
    parser.add_argument("--data-dir", default=str(DATA_DIR), help="the benchmark data folder (HotpotQA)")
    parser.add_argument("--out", default=None, help="write the report (text, not numbers) here as well as printing it")
    args = parser.parse_args(argv)
    try:
        report = profile(args.data_dir, args.documents, args.index, args.top)
    except DataError as exc:
        print(f"Profile skipped: no HotpotQA data ({exc})".splitlines()[0])
        return 0
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
