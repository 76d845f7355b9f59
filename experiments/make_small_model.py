"""Write a small randomly initialized model of SmolLM2's architecture, for runs a CPU can finish.

    python experiments/evaluate.py --env-ids AtomMem-Synthetic-Tiny-v0 --policy heuristic --episodes 6000 \\
        --no-plots --out-dir runs/learning/teacher
    python experiments/make_small_model.py --out-dir runs/learning/small-model \\
        --tokenizer-from runs/learning/teacher/trajectories.jsonl --vocab-size 4096
    python experiments/sft.py --model runs/learning/small-model ...                 # then GRPO from its final/

SmolLM2's Llama architecture and chat template with a small hidden size, few layers and tied embeddings
(:mod:`agents.training.small_model`). The tokenizer is SmolLM2's (``--tokenizer smollm2``, the default) or,
with ``--tokenizer-from``, a byte-level BPE of ``--vocab-size`` tokens trained on those trajectories'
text (train on the training family's episodes only) with SmolLM2's special tokens and template.
The folder loads wherever a model name does (``--model FOLDER``, ``--policy hf:FOLDER``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import HelpFormatter, exit_on_errors
from agents.training.small_model import SmallLlama


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags: the folder, the tokenizer and the shape (each :class:`SmallLlama` field)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out-dir", required=True, help="the model folder to write (new or empty)")
    parser.add_argument("--tokenizer", default="smollm2", help="the tokenizer and chat template to use: smollm2, "
                        "a model name or folder; with --tokenizer-from, only its chat template")
    parser.add_argument("--tokenizer-from", nargs="+", default=[], metavar="TRAJECTORIES",
                        help="trajectories.jsonl files to train a byte-level BPE tokenizer on")
    parser.add_argument("--vocab-size", type=int, default=4096, help="the trained tokenizer's size")
    defaults = SmallLlama()
    for name in ("hidden_size", "layers", "heads", "kv_heads", "intermediate_size", "max_positions"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name),
                            help=f"the model's {name.replace('_', ' ')}")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random initialization")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    """Build the tokenizer and the model; print and return the folder."""
    args = parse_args(argv)
    from agents.training.small_model import build_small_llama, train_tokenizer, trajectory_texts

    shape = SmallLlama(hidden_size=args.hidden_size, layers=args.layers, heads=args.heads, kv_heads=args.kv_heads,
                       intermediate_size=args.intermediate_size, max_positions=args.max_positions)
    with exit_on_errors():
        if args.tokenizer_from:
            tokenizer = train_tokenizer(trajectory_texts(args.tokenizer_from), args.vocab_size, args.tokenizer)
            about = {"tokenizer": f"byte-level BPE of {args.vocab_size} trained on {', '.join(args.tokenizer_from)}",
                     "chat_template": args.tokenizer}
        else:
            from transformers import AutoTokenizer

            from agents.models import resolve_model

            tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.tokenizer))
            about = {"tokenizer": args.tokenizer}
        counts = build_small_llama(args.out_dir, shape, tokenizer, seed=args.seed, about=about)
    print(json.dumps(counts), f"-> {args.out_dir}")
    return Path(args.out_dir)


if __name__ == "__main__":
    with exit_on_errors():
        main()
