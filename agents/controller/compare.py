"""Comparing learned controllers with the static workflows on the same episodes: the library behind
``experiments/controller_compare.py``.

Every policy plays the same held-out episodes; the per-question results (:func:`question_records`) are
what the paired tests of :mod:`agents.controller.significance` read, so they can be shipped and the tests
redone from them without playing again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.controller.evaluation import (
    behaviour,
    eval_env_config,
    macro_rates,
    module_policy,
    play_config,
    random_policy,
)
from agents.controller.macros import MACROS
from agents.controller.workflows import WORKFLOWS, ControllerPolicy
from agents.training.cli import arg
from agents.training.envs import EnvSpec
from agents.training.metrics import confidence_intervals, summarize
from agents.training.rollout import Trajectory
from agents.training.stats import DEFAULT_RESAMPLES
from atommem_env.errors import ConfigError

COLUMNS = ("env_id", "policy", "episodes", "questions", "em", "em_lo", "em_hi", "f1", "turns", "create_per_turn",
           "read_per_turn", "update_per_turn", "delete_per_turn", "scratchpad_per_turn", "store_size",
           "invalid_per_turn", "truncated", *(f"macro/{m}" for m in MACROS))
EPISODE_COLUMNS = ("env_id", "policy", "index", "seed", "episode_id", "question", "gold", "answer", "em", "f1",
                   "turns", "macros")
BEHAVIOUR_COLUMNS = ("env_id", "policy", "situation", "macro", "count", "share")

LEARNED = "learned"  # --policies learned: every --checkpoint; each plays as learned:<its run folder>
Played = dict[tuple[str, str], list[Trajectory]]  # (env id, policy) -> its episodes, in episode order


@dataclass
class CompareArgs:
    """Command-line arguments (each field is a ``--flag``)."""

    env_ids: list[str] = arg(["AtomMem-Synthetic-v0"], "AtomMem ids to compare on")
    checkpoint: list[str] = arg([], "trained controllers (rllib_controller.py's <out-dir>/final), e.g. one per "
                                    "training seed; each plays as learned:<run folder>")
    policies: list[str] = arg([], "run only these (names of workflows, random, learned); default: all")
    episodes: int = arg(200, "episodes per env id (fewer when the benchmark has fewer)")
    seed: int = arg(0, "episode i is reset with seed + i")
    env_kwargs: str = arg("{}", "JSON object of options for every gym.make")
    data_dir: str | None = arg(None, "folder of the benchmark files (real-data env ids)")
    resamples: int = arg(DEFAULT_RESAMPLES, "bootstrap resamples of the intervals (episodes resampled whole)")
    from_episodes: list[str] = arg([], "redo the tables and paired tests from episodes.csv files written before "
                                       "(e.g. the static workflows' and each seed's; plays nothing)")
    out_dir: str | None = arg(None, "where to write results, episodes.csv and the paired tests")


def learned_name(checkpoint: str) -> str:
    """``learned:<run folder>`` for ``<run folder>/final`` (or ``learned:<folder>`` for another folder)."""
    path = Path(checkpoint.rstrip("/"))
    return f"{LEARNED}:{path.parent.name if path.name == 'final' else path.name}"


def policies(args: CompareArgs) -> dict[str, ControllerPolicy]:
    """The static workflows, random, and one learned controller per ``--checkpoint``.

    Raises:
        ConfigError: ``--policies`` names an unknown policy, ``learned`` without ``--checkpoint``, or two
            checkpoints share a run folder name.
    """
    known = [*WORKFLOWS, "random", LEARNED]
    chosen = args.policies or [name for name in known if name != LEARNED or args.checkpoint]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise ConfigError(f"--policies {' '.join(unknown)}: unknown; choose from {', '.join(known)}.")
    make = {**WORKFLOWS, "random": random_policy(args.seed)}
    if LEARNED in chosen and not args.checkpoint:
        raise ConfigError("--policies learned needs --checkpoint (rllib_controller.py's <out-dir>/final).")
    names = [learned_name(c) for c in args.checkpoint]
    if len(set(names)) < len(names):
        raise ConfigError(f"--checkpoint: two checkpoints share a run folder name ({', '.join(names)}); "
                          "each learned policy is named after its run folder.")
    chosen_policies = {name: make[name] for name in chosen if name != LEARNED}
    if LEARNED in chosen:
        chosen_policies.update({name: module_policy(c) for name, c in zip(names, args.checkpoint, strict=True)})
    return chosen_policies


def play_all(args: CompareArgs) -> Played:
    """Every chosen policy on the same ``args.episodes`` held-out episodes of each env id."""
    chosen = policies(args)
    played: Played = {}
    for env_id in args.env_ids:
        spec = EnvSpec.from_flags(env_id, args.env_kwargs, args.data_dir)
        config = eval_env_config({"env_id": env_id, "env_kwargs": spec.options()})
        for name, policy in chosen.items():
            played[env_id, name] = play_config(config, policy, args.episodes, args.seed)
    return played


def summary_rows(played: Played, resamples: int = DEFAULT_RESAMPLES) -> list[dict[str, Any]]:
    """One :data:`COLUMNS` row per (env id, policy): EM with its 95 % interval clustered by episode, F1, rates."""
    return [{"env_id": env_id, "policy": name, **summarize(trajectories), **macro_rates(trajectories),
             **confidence_intervals(trajectories, resamples=resamples)}
            for (env_id, name), trajectories in played.items()]


def question_records(played: Played) -> list[dict[str, Any]]:
    """One :data:`EPISODE_COLUMNS` record per (env id, policy, episode, question): what was answered, its
    EM and F1, and the episode's turns and macros (space-separated)."""
    records = []
    for (env_id, name), trajectories in played.items():
        for t in trajectories:
            macros = " ".join(t.result["macros"])
            for q, (gold, answer, em, f1) in enumerate(zip(t.result["golds"], t.result["answers"], t.result["em"],
                                                           t.result["f1"], strict=True)):
                records.append({"env_id": env_id, "policy": name, "index": t.index, "seed": t.seed,
                                "episode_id": t.episode_id, "question": q, "gold": gold, "answer": answer,
                                "em": float(em), "f1": float(f1), "turns": len(t.turns), "macros": macros})
    return records


def behaviour_rows(played: Played) -> list[dict[str, Any]]:
    """Which macro each policy chose in which situation (:func:`agents.controller.evaluation.behaviour`), per
    env id and policy: rows of :data:`BEHAVIOUR_COLUMNS`."""
    return [{"env_id": env_id, "policy": name, **row} for (env_id, name), trajectories in played.items()
            for row in behaviour(trajectories)]


def markdown(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    """``rows`` as a Markdown table (floats to three decimals)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c])
                                       for c in columns) + " |")
    return "\n".join(lines)
