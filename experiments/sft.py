"""Supervised fine-tuning of a local model on teacher trajectories (SPEC §8's first stage).

    python experiments/evaluate.py --policy heuristic --episodes 200 --out-dir runs/evaluate/teacher
    python experiments/sft.py --trajectories runs/evaluate/teacher/trajectories.jsonl --model smollm2 \\
        --preset cpu-small --out-dir runs/sft/smollm2
    python experiments/sft.py ... --out-dir runs/sft/smollm2 --resume          # continue after a crash
    python experiments/evaluate.py --policy hf:runs/sft/smollm2/final --policy-kwargs '{"temperature": 0}'

Every turn of each teacher episode with reward >= ``--min-reward`` becomes one sample (prompt: the
observation through the student's chat template; response: the teacher's text and the end-of-turn
token, or the teacher's own token ids when it had them; see :mod:`agents.training.sft_data`). Each epoch
visits the samples in a seeded shuffle, ``--batch-size`` samples per optimizer step, and the loss is
the token-mean negative log-likelihood of the response tokens (:meth:`Learner.sft_step`).

The defaults are the paper's recipe (SPEC §8: reward >= 0.5, 3 epochs). The paper gives no SFT
learning rate; 1e-5 with 10 warm-up steps is a common full fine-tuning choice for models of a few
billion parameters (GRPO then uses 1e-6). ``--preset cpu-small`` keeps the recipe but sizes sequences
and batches for SmolLM2-135M on a CPU.

Writes into ``--out-dir``: ``checkpoints/step-*/`` every ``--save-every`` steps and at the end (with
the data cursor, so ``--resume`` continues exactly), ``final/`` (a plain model folder:
``--policy hf:<out-dir>/final``), ``metrics.csv`` and TensorBoard events (``train/loss``,
``train/grad_norm``, ``train/lr``, ``train/tokens_per_s``, ``train/epoch``; ``eval/em`` etc. when
``--eval-env-ids`` is given), and ``config.json``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import exit_on_errors, parse_dataclass, progress_bars, resume_command
from agents.training.sft_config import PRESETS, Args
from agents.training.sft_eval import evaluate_final
from agents.training.tracking import BACKENDS, Tracker


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse ``argv`` (``sys.argv`` when ``None``) into validated :class:`Args` (flags beat the preset)."""
    args = parse_dataclass(Args, argv, presets=PRESETS, choices={"logger": BACKENDS}, description=__doc__)
    with exit_on_errors():
        args.validate()
    return args


def main(argv: list[str] | None = None) -> Path:
    """Command-line entry point: train, export ``final/``, optionally evaluate it; returns ``final/``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    # torch and transformers only once the flags are parsed: --help and a bad flag need neither.
    import transformers

    from agents.training.sft import log, train

    log.setLevel(logging.INFO)
    transformers.utils.logging.disable_progress_bar()  # its per-save bars would break up the training bar
    resume = resume_command(__file__, argv, args.out_dir)
    with exit_on_errors(resume=resume):
        final, step = train(args, progress_bars("step"))
    print(f"SFT finished at step {step}: model in {final}/, metrics in {args.out_dir}/metrics.csv")
    if args.eval_env_ids:
        with exit_on_errors(resume=resume):
            metrics = evaluate_final(args, final)  # the learner is gone by now: one model in memory
        with Tracker(args.out_dir, backend=args.logger, resume=True) as tracker:
            tracker.log(metrics, step)
        print("evaluation: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items())))
    return final


if __name__ == "__main__":
    with exit_on_errors():
        main()
