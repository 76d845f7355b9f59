"""What can be wrong with the arguments of ``experiments/sft.py``: one line per problem, with the fix."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import atommem_env
from agents.training.cli import json_object
from agents.training.tracking import BACKENDS
from atommem_env.errors import ConfigError

DTYPES = ("float32", "bfloat16", "float16")
LR_SCHEDULES = ("constant", "cosine")


def check_args(args: Any, presets: Mapping[str, Any]) -> list[str]:
    """Every problem with ``args`` (an ``sft.Args``); empty when they are valid."""
    return [
        *_data_problems(args),
        *_optimization_problems(args),
        *_run_problems(args, presets),
        *_evaluation_problems(args),
    ]


def _data_problems(args: Any) -> list[str]:
    if not args.trajectories:
        return ["--trajectories is required: the trajectories.jsonl files of teacher episodes, e.g. "
                "runs/evaluate/<policy>-<time>/trajectories.jsonl from experiments/evaluate.py."]
    found = [f"--trajectories {path}: no such file; pass a trajectories.jsonl written by experiments/evaluate.py."
             for path in args.trajectories if not Path(path).is_file()]
    checks = [
        (0.0 <= args.min_reward <= 1.0,
         f"--min-reward {args.min_reward} must be in [0, 1] (rewards are EM; paper: 0.5)."),
        (args.max_prompt_tokens >= 1,
         f"--max-prompt-tokens {args.max_prompt_tokens} must be at least 1 (paper: 16384)."),
        (args.max_seq_tokens > args.max_prompt_tokens,
         f"--max-seq-tokens {args.max_seq_tokens} must exceed --max-prompt-tokens {args.max_prompt_tokens}, "
         "leaving room for the response (paper: 16384 + 4096)."),
    ]
    return found + [message for ok, message in checks if not ok]


def _optimization_problems(args: Any) -> list[str]:
    checks = [
        (args.epochs >= 1, f"--epochs {args.epochs} must be at least 1 (paper: 3)."),
        (args.batch_size >= 1, f"--batch-size {args.batch_size} must be at least 1 (e.g. 16)."),
        (args.lr > 0, f"--lr {args.lr} must be positive (e.g. 1e-5)."),
        (args.warmup_steps >= 0, f"--warmup-steps {args.warmup_steps} must be >= 0 (0 disables warm-up)."),
        (args.lr_schedule in LR_SCHEDULES,
         f"--lr-schedule {args.lr_schedule!r} is unknown; choose one of {', '.join(LR_SCHEDULES)}."),
        (args.prompt_loss_weight >= 0,
         f"--prompt-loss-weight {args.prompt_loss_weight} must be >= 0 (0: the loss is on responses only)."),
        (args.micro_batch_tokens >= 1, f"--micro-batch-tokens {args.micro_batch_tokens} must be at least 1."),
        (args.lora_r >= 0, f"--lora-r {args.lora_r} must be >= 0 (0 trains all weights)."),
        (args.dtype in DTYPES, f"--dtype {args.dtype!r} is unknown; choose one of {', '.join(DTYPES)}."),
        (args.seed >= 0, f"--seed {args.seed} must be >= 0."),
    ]
    return [message for ok, message in checks if not ok]


def _run_problems(args: Any, presets: Mapping[str, Any]) -> list[str]:
    checks = [
        (args.preset is None or args.preset in presets,
         f"--preset {args.preset!r} is unknown; choose one of {', '.join(sorted(presets))}."),
        (args.save_every >= 0, f"--save-every {args.save_every} must be >= 0 (0 saves only at the end)."),
        (args.keep_checkpoints >= 1, f"--keep-checkpoints {args.keep_checkpoints} must be at least 1."),
        (args.max_steps >= 0, f"--max-steps {args.max_steps} must be >= 0 (0 runs every epoch)."),
        (args.logger in BACKENDS, f"--logger {args.logger!r} is unknown; choose one of {', '.join(BACKENDS)}."),
        (bool(args.out_dir) or not args.resume, "--resume continues an earlier run: name its folder with --out-dir."),
    ]
    return [message for ok, message in checks if not ok]


def _evaluation_problems(args: Any) -> list[str]:
    known = set(atommem_env.registered_ids())
    found = [f"--eval-env-ids {env_id}: not a registered id; choose from atommem_env.registered_ids(), "
             "e.g. AtomMem-Synthetic-v0." for env_id in args.eval_env_ids if env_id not in known]
    if args.eval_episodes < 1:
        found.append(f"--eval-episodes {args.eval_episodes} must be at least 1.")
    for flag, text, example in (("--eval-env-kwargs", args.eval_env_kwargs, '{"num_documents": 6}'),
                                ("--eval-policy-kwargs", args.eval_policy_kwargs, '{"max_new_tokens": 256}')):
        try:
            json_object(flag, text, example)
        except ConfigError as problem:
            found.append(str(problem))
    return found
