"""Dataset command line: ``python -m atommem_env.datasets {info,export} ...``.

``info`` reports, for a data folder, which files were found per benchmark and split, how many records
were read and skipped, the pool sizes, and how many episodes each document count yields.
``export`` writes built episodes as JSON Lines for inspection.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from ..errors import AtomMemError
from . import BENCHMARKS, load_benchmark
from .sources import ENV_VAR, SPLITS, load_corpus, locate

DOCUMENT_COUNTS = (200, 400, 800)


def _info(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or os.environ.get(ENV_VAR)
    if not data_dir:
        print(f"error: pass --data-dir or set {ENV_VAR} (info reports on a local data folder)", file=sys.stderr)
        return 2
    for benchmark in BENCHMARKS:
        for split in SPLITS:
            label = f"{benchmark}/{split}"
            try:
                location = locate(benchmark, split, data_dir=data_dir)
                corpus = load_corpus(benchmark, split, location)
            except AtomMemError as exc:
                print(f"{label}: not available -- {exc}")
                continue
            print(f"{label}: {location.describe()}")
            print(f"  records: {len(corpus.samples) + len(corpus.skipped)} read, {len(corpus.samples)} usable, "
                  f"{len(corpus.skipped)} skipped")
            for source, rid, why in corpus.skipped[: args.show_skipped]:
                print(f"    skipped {rid} ({why}) in {source}")
            print(f"  pool: {len(corpus.pool)} unique paragraphs")
            for n in args.documents:
                if len(corpus.pool) < n:
                    print(f"  {n} documents: unavailable (pool of {len(corpus.pool)} paragraphs < {n})")
                    continue
                try:
                    built = load_benchmark(benchmark, split=split, num_documents=n, data_files=list(location.files),
                                           questions_per_episode=args.questions_per_episode)
                    print(f"  {n} documents: {len(built)} episodes ({built.num_questions} questions)")
                except AtomMemError as exc:
                    print(f"  {n} documents: unavailable -- {exc}")
    return 0


def _export(args: argparse.Namespace) -> int:
    source = load_benchmark(args.benchmark, split=args.split, num_documents=args.num_documents,
                            data_dir=args.data_dir, questions_per_episode=args.questions_per_episode,
                            shuffle=args.shuffle, max_questions=args.max_questions)
    stop = min(args.start + args.count, len(source))
    with open(args.out, "w", encoding="utf-8") as out:
        for index in range(args.start, stop):
            # One generator per (seed, index): an episode can be rebuilt alone, in any order.
            episode = source.episode(index, np.random.default_rng([args.seed, index]))
            record = {"index": index, "seed": args.seed, **dataclasses.asdict(episode)}
            if args.no_context:
                record.pop("context")
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {stop - args.start} episodes of {source.name} ({len(source)} in all) to {args.out}")
    return 0


def _int_list(value: str) -> tuple[int, ...]:
    return tuple(int(v) for v in value.split(",") if v.strip())


def _questions_per_episode(value: str) -> str | int:
    return int(value) if value.isdigit() else value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(prog="python -m atommem_env.datasets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="what a data folder holds and how many episodes each id yields")
    info.add_argument("--data-dir", default=None, help=f"data folder (default: ${ENV_VAR})")
    info.add_argument("--documents", type=_int_list, default=DOCUMENT_COUNTS, metavar="N,N,...",
                      help="document counts to report (default: 200,400,800)")
    info.add_argument("--questions-per-episode", type=_questions_per_episode, default="paper")
    info.add_argument("--show-skipped", type=int, default=5, metavar="K", help="name the first K skipped records")
    info.set_defaults(run=_info)
    export = sub.add_parser("export", help="write built episodes as JSON Lines")
    export.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS))
    export.add_argument("--split", default="dev")
    export.add_argument("--num-documents", type=int, default=200)
    export.add_argument("--data-dir", default=None)
    export.add_argument("--questions-per-episode", type=_questions_per_episode, default="paper")
    export.add_argument("--shuffle", default="episode", choices=("episode", "fixed"))
    export.add_argument("--max-questions", type=int, default=None)
    export.add_argument("--start", type=int, default=0, help="first episode index")
    export.add_argument("--count", type=int, default=5)
    export.add_argument("--seed", type=int, default=0, help="episode i uses numpy default_rng([seed, i])")
    export.add_argument("--no-context", action="store_true", help="leave the rendered context out")
    export.add_argument("--out", required=True)
    export.set_defaults(run=_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for a data or configuration error)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except AtomMemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
