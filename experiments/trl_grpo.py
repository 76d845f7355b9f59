"""GRPO with TRL's GRPOTrainer on an atommem env (the env unchanged, our rollout as TRL's rollout_func).

    python experiments/trl_grpo.py --model runs/learning/small-model --out-dir runs/trl/small --steps 2
    python experiments/trl_grpo.py --model smollm2 --env-kwargs '{"action_format": "tools"}' \\
        --max-new-tokens 64 --out-dir runs/trl/smollm2-tools

Each step plays --prompts-per-step training episodes (indices 0 .. --episodes - 1 of the env, drawn by
TRL) --group-size times each, every episode cut at --max-turns turns, and makes one optimizer step of
TRL's GRPO loss on every turn (agents/training/trl_rollout.py says how episodes become TRL rows and why
this is a rollout_func, not TRL's environment mode). The defaults are the paper's recipe as
experiments/grpo_train.py has it, in TRL's names. Metrics go to <out-dir>/log_history.json and the trained
model to <out-dir>/final/ (evaluate it with experiments/evaluate.py --policy hf:<out-dir>/final on
episodes never trained on, e.g. --env-kwargs '{"seed_salt": 1}' for a Synthetic id).
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
    """The flags: model, env, layout (group size, turns), steps and the sampling and optimizer settings."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", default="smollm2", help="smollm2, a hub name or a local model folder")
    parser.add_argument("--env-id", default="AtomMem-Synthetic-Tiny-v0", help="an AtomMem-protocol env id")
    parser.add_argument("--env-kwargs", default="{}", help="JSON object of env options (not max_turns)")
    parser.add_argument("--data-dir", default=None, help="folder of the benchmark files (real-data env ids)")
    parser.add_argument("--allow-dev-training", action="store_true",
                        help="train a real-benchmark id on its dev split, where evaluate.py scores")
    parser.add_argument("--episodes", type=int, default=256, help="training episodes: indices 0 .. N-1")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps")
    parser.add_argument("--prompts-per-step", type=int, default=2, help="episodes (groups) a step")
    parser.add_argument("--group-size", type=int, default=4, help="rollouts of each episode")
    parser.add_argument("--max-turns", type=int, default=8, help="turn budget of an episode (TRL rows per episode)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="response budget per turn")
    parser.add_argument("--max-context", type=int, default=None, help="prompt + response tokens; default: the "
                        "model's limit")
    parser.add_argument("--rollout-batch-size", type=int, default=8, help="episodes stepped together")
    parser.add_argument("--lr", type=float, default=1e-6, help="learning rate after warm-up (the paper: 1e-6)")
    parser.add_argument("--warmup-steps", type=int, default=20, help="linear warm-up steps (the paper: 20)")
    parser.add_argument("--kl-coef", type=float, default=0.001, help="TRL's beta: k3 KL to the initial model")
    parser.add_argument("--seed", type=int, default=0, help="seeds TRL, the sampler and the episodes' resets")
    parser.add_argument("--out-dir", required=True, help="the run's folder (TRL's output_dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    """Train, then write the metrics and the final model; returns the model folder."""
    args = parse_args(argv)
    from trl import GRPOTrainer

    from agents.models import load_causal_lm
    from agents.training.envs import EnvSpec, training_data
    from agents.training.trl_rollout import TRLRollout, env_reward
    from atommem_env.errors import ConfigError

    env = EnvSpec.from_flags(args.env_id, args.env_kwargs, args.data_dir)
    if training_data(env.env_id, dict(env.kwargs))["split"] == "dev" and not args.allow_dev_training:
        raise ConfigError(f"--env-id {env.env_id} trains on its dev split, where evaluate.py scores; pass "
                          "--env-kwargs '{\"split\": \"train\"}' or --allow-dev-training.")
    rollout = TRLRollout(env, group_size=args.group_size, max_turns=args.max_turns,
                         batch_size=args.rollout_batch_size, max_context=args.max_context)
    config = rollout.config(args.out_dir, prompts_per_step=args.prompts_per_step, max_steps=args.steps,
                            learning_rate=args.lr, warmup_steps=args.warmup_steps, beta=args.kl_coef,
                            max_completion_length=args.max_new_tokens, seed=args.seed, logging_steps=1,
                            save_strategy="no", report_to="none")
    model, tokenizer = load_causal_lm(args.model, None, dtype="float32")
    trainer = GRPOTrainer(model, reward_funcs=env_reward, args=config, processing_class=tokenizer,
                          train_dataset=rollout.dataset(range(args.episodes), seed=args.seed), rollout_func=rollout)
    trainer.train()
    out = Path(args.out_dir)
    (out / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=2) + "\n")
    trainer.save_model(str(out / "final"))
    for row in trainer.state.log_history:
        print(json.dumps({k: v for k, v in row.items() if k in ("step", "reward", "reward_std", "loss", "grad_norm")}))
    print(f"-> {out / 'final'}")
    return out / "final"


if __name__ == "__main__":
    with exit_on_errors():
        main()
