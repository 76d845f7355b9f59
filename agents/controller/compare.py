"""Comparing a learned controller with the static workflows on the same episodes: the library behind
``experiments/controller_compare.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.controller.evaluation import eval_env_config, macro_rates, module_policy, play_config, random_policy
from agents.controller.macros import MACROS
from agents.controller.workflows import WORKFLOWS, ControllerPolicy
from agents.training.cli import arg
from agents.training.envs import EnvSpec
from agents.training.metrics import summarize
from atommem_env.errors import ConfigError

COLUMNS = ("env_id", "policy", "episodes", "questions", "em", "f1", "turns", "create_per_turn", "read_per_turn",
           "update_per_turn", "delete_per_turn", "scratchpad_per_turn", "store_size", "invalid_per_turn",
           "truncated", *(f"macro/{m}" for m in MACROS))


LEARNED = "learned"  # the policy name of the trained controller


@dataclass
class CompareArgs:
    """Command-line arguments (each field is a ``--flag``)."""

    env_ids: list[str] = arg(["AtomMem-Synthetic-v0"], "AtomMem ids to compare on")
    checkpoint: str | None = arg(None, "a trained controller (rllib_controller.py's <out-dir>/final)")
    policies: list[str] = arg([], "run only these (names of workflows, random, learned); default: all")
    episodes: int = arg(200, "episodes per env id (fewer when the benchmark has fewer)")
    seed: int = arg(0, "episode i is reset with seed + i")
    env_kwargs: str = arg("{}", "JSON object of options for every gym.make")
    data_dir: str | None = arg(None, "folder of the benchmark files (real-data env ids)")
    out_dir: str | None = arg(None, "where to write results.md and results.csv")


def policies(args: CompareArgs) -> dict[str, ControllerPolicy]:
    """The static workflows, random, and the learned controller when a checkpoint is given.

    Raises:
        ConfigError: ``--policies`` names an unknown policy, or ``learned`` without ``--checkpoint``.
    """
    known = [*WORKFLOWS, "random", LEARNED]
    chosen = args.policies or [name for name in known if name != LEARNED or args.checkpoint]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise ConfigError(f"--policies {' '.join(unknown)}: unknown; choose from {', '.join(known)}.")
    make = {**WORKFLOWS, "random": random_policy(args.seed)}
    if LEARNED in chosen:
        if not args.checkpoint:
            raise ConfigError("--policies learned needs --checkpoint (rllib_controller.py's <out-dir>/final).")
        make[LEARNED] = module_policy(args.checkpoint)
    return {name: make[name] for name in chosen}


def compare(args: CompareArgs) -> list[dict[str, Any]]:
    """One results row per (env id, policy)."""
    rows = []
    chosen = policies(args)
    for env_id in args.env_ids:
        spec = EnvSpec.from_flags(env_id, args.env_kwargs, args.data_dir)
        config = eval_env_config({"env_id": env_id, "env_kwargs": spec.options()})
        for name, policy in chosen.items():
            trajectories = play_config(config, policy, args.episodes, args.seed)
            rows.append({"env_id": env_id, "policy": name, **summarize(trajectories), **macro_rates(trajectories)})
    return rows


def markdown(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    """``rows`` as a Markdown table (floats to three decimals)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c])
                                       for c in columns) + " |")
    return "\n".join(lines)

