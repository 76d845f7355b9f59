"""Copying, the first skill a small model trained from scratch lacks: make a copy task, probe the skill.

    # a "repeat the text" task from the teacher's article chunks, in the trajectories.jsonl shape
    python experiments/copying.py data --trajectories runs/learning/teacher/trajectories.jsonl \\
        --count 20000 --out runs/learning/copy/trajectories.jsonl
    # "continue the text": a whole chunk and a cue of 3 words; the response is what follows the cue
    python experiments/copying.py data --task continue --trajectories ... \\
        --out runs/learning/continue/trajectories.jsonl
    python experiments/sft.py --trajectories runs/learning/teacher/trajectories.jsonl \\
        runs/learning/copy/trajectories.jsonl --model ... --preset cpu-small-model ...   # mixed with the teacher's
    # the tasks' own readout: greedy answers to 64 continue episodes from held-out chunks, exact rate with its CI
    python experiments/copying.py score --task continue --trajectories runs/learning/eval/teacher/trajectories.jsonl \\
        --models runs/learning/small-model
    # the induction probe: NLL of prompt tokens ending an n-gram seen earlier in the prompt vs new ones
    python experiments/copying.py probe --trajectories runs/learning/eval/sft/trajectories.jsonl \\
        --models runs/learning/small-model runs/learning/sft/checkpoints/step-00000325

``data`` writes one-turn episodes: with ``--task repeat`` the user message is a span of an article chunk and
the response is the same span (:func:`agents.training.copying.copy_task_records`); with ``--task continue``
the user message is a whole chunk and a cue that occurs once in it, and the response is the words after
the cue (:func:`agents.training.copying.continue_task_records`), which position alone cannot produce.
``score`` answers ``--count`` such episodes built from other (held-out) chunks greedily and prints, per model,
the share answered exactly, with its 95 % bootstrap interval, and the share of words in place.
``probe`` prompts each model with the first ``--prompts`` reading turns of the given episodes as the policy
would and prints, per model, the mean NLL (nats) of tokens that end a repeated ``--n``-gram and of tokens that
end a new one (:func:`agents.training.copying.induction_nll`): a model that copies predicts the repeated ones
better than the new ones (SmolLM2-135M: 0.36 against 3.35 nats, docs/TRAINING.md); one that does not, far
worse (most new tokens are the fixed prompt text, which it learns first). Use the held-out family's episodes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import HelpFormatter, exit_on_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``data`` or ``probe`` and their flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, help="data: write copy-task episodes; "
                                     "probe: the induction probe of models (each has its own --help)")
    data = commands.add_parser("data", help="write copy-task episodes", formatter_class=HelpFormatter)
    data.add_argument("--trajectories", nargs="+", required=True, help="teacher trajectories.jsonl (training family)")
    data.add_argument("--out", required=True, help="the trajectories.jsonl to write")
    data.add_argument("--task", choices=("repeat", "continue"), default="repeat",
                      help="repeat: the response is the user's span; continue: the words after a cue in a chunk")
    data.add_argument("--count", type=int, default=20_000, help="episodes to write")
    data.add_argument("--min-words", type=int, help="shortest response, in words (default: repeat 8, continue 4)")
    data.add_argument("--max-words", type=int, help="longest response, in words (default: repeat 40, continue 16)")
    data.add_argument("--cue-words", type=int, default=3, help="continue: words of the cue")
    data.add_argument("--seed", type=int, default=0, help="seeds the choice of chunks and spans")
    score = commands.add_parser("score", help="greedy answers to task episodes, scored", formatter_class=HelpFormatter)
    score.add_argument("--trajectories", required=True, help="episodes whose chunks to use (held-out family)")
    score.add_argument("--models", nargs="+", required=True, help="model folders (or names) to score")
    score.add_argument("--task", choices=("repeat", "continue"), default="continue", help="which task")
    score.add_argument("--count", type=int, default=64, help="task episodes to answer")
    score.add_argument("--seed", type=int, default=1, help="seeds the task episodes")
    probe = commands.add_parser("probe", help="the induction probe of each model", formatter_class=HelpFormatter)
    probe.add_argument("--trajectories", required=True, help="episodes whose prompts to score (held-out family)")
    probe.add_argument("--models", nargs="+", required=True, help="model folders (or names) to probe")
    probe.add_argument("--prompts", type=int, default=48, help="reading turns to score")
    probe.add_argument("--n", type=int, default=4, help="n-gram length that makes a token 'repeated'")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the sub-command; ``probe`` prints one JSON line per model."""
    args = parse_args(argv)
    from agents.training.evaluation import load_trajectories

    with exit_on_errors():
        if args.command == "data":
            write_task(args, [r for path in args.trajectories for r in load_trajectories(Path(path))])
            return
        from agents.training.copying import probe_models, score_models

        records = load_trajectories(Path(args.trajectories))
        rows = (score_models(records, args.models, task=args.task, count=args.count, seed=args.seed)
                if args.command == "score" else probe_models(records, args.models, prompts=args.prompts, n=args.n))
        for row in rows:
            print(json.dumps(row))


def write_task(args: argparse.Namespace, records: list[dict]) -> None:
    """Write the ``--task`` episodes built from ``records`` to ``--out``."""
    from agents.training.copying import task_episodes

    lengths = {key: value for key, value in (("min_words", args.min_words), ("max_words", args.max_words))
               if value is not None}
    if args.task == "continue":
        lengths["cue_words"] = args.cue_words
    episodes = task_episodes(args.task, records, args.count, args.seed, **lengths)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(e) + "\n" for e in episodes))
    print(f"{len(episodes)} {args.task} episodes -> {args.out}")


if __name__ == "__main__":
    with exit_on_errors():
        main()
