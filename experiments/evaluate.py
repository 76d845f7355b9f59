"""Evaluate a policy on AtomMem environments and print a results table.

    python experiments/evaluate.py                                   # heuristic agent on Synthetic
    python experiments/evaluate.py --policy no-memory --episodes 50
    python experiments/evaluate.py --env-ids AtomMem-HotpotQA-200-v0 --data-dir ../shared/data

Episode i of an env id is the source's episode ``i`` (pinned index) reset with seed ``seed + i``, so
every policy sees the same episodes. Writes ``trajectories.jsonl`` (every prompt, response, op and
error), ``results.md`` and ``results.csv`` (one row per env id) into ``--out-dir``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym
from tqdm import tqdm

import atommem_env  # noqa: F401  (registers the ids)
from agents import POLICIES
from experiments.metrics import summarize
from experiments.rollout import rollout

COLUMNS = (
    "env_id", "policy", "episodes", "questions", "em", "f1", "substring_em", "turns", "create_per_turn",
    "read_per_turn", "update_per_turn", "delete_per_turn", "scratchpad_per_turn", "store_size",
    "invalid_per_turn", "truncated",
)


@dataclass
class Args:
    """Command-line arguments (each field is a ``--flag``)."""

    env_ids: list[str] = field(default_factory=lambda: ["AtomMem-Synthetic-v0"])
    policy: str = "heuristic"
    episodes: int = 20
    seed: int = 0
    batch_size: int = 8
    data_dir: str | None = None
    env_kwargs: str = "{}"  # JSON object of extra env options, e.g. '{"top_k": 3}'
    out_dir: str = "runs/evaluate"

    def validate(self) -> None:
        if self.policy not in POLICIES:
            raise SystemExit(f"--policy {self.policy!r} is unknown; choose one of {sorted(POLICIES)}.")
        if self.episodes < 1 or self.batch_size < 1:
            raise SystemExit("--episodes and --batch-size must be at least 1.")
        try:
            kwargs = json.loads(self.env_kwargs)
        except json.JSONDecodeError as error:
            raise SystemExit(f"--env-kwargs is not valid JSON ({error}); e.g. '{{\"top_k\": 3}}'.") from None
        if not isinstance(kwargs, dict):
            raise SystemExit("--env-kwargs must be a JSON object, e.g. '{\"top_k\": 3}'.")


def parse_args(argv: list[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(Args):
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if f.name == "env_ids":
            parser.add_argument(flag, nargs="+", default=default)
        else:
            kind = int if isinstance(default, int) else str
            parser.add_argument(flag, type=kind, default=default)
    args = Args(**vars(parser.parse_args(argv)))
    args.validate()
    return args


def env_kwargs(args: Args, env_id: str) -> dict[str, Any]:
    kwargs = json.loads(args.env_kwargs)
    if args.data_dir and env_id != "AtomMem-Synthetic-v0":
        kwargs.setdefault("data_dir", args.data_dir)
    return kwargs


def evaluate(args: Args) -> list[dict[str, Any]]:
    """Run every env id and return one results row per id; also writes the output files."""
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(out / "trajectories.jsonl", "w", encoding="utf-8") as sink:
        for env_id in args.env_ids:
            kwargs = env_kwargs(args, env_id)
            make = lambda: gym.make(env_id, **kwargs)  # noqa: E731
            available = len(make().unwrapped.source)
            count = min(args.episodes, available)
            policy = POLICIES[args.policy]()
            started = time.perf_counter()
            trajectories = []
            bar = tqdm(total=count, desc=env_id, unit="ep")
            for start in range(0, count, args.batch_size):  # batches keep the bar and memory honest
                ids = list(range(start, min(count, start + args.batch_size)))
                batch = rollout(make, policy, [args.seed + i for i in ids], env_id=env_id, indices=ids,
                                batch_size=args.batch_size)
                trajectories += batch
                for traj in batch:
                    sink.write(json.dumps({"policy": policy.name, **traj.to_json()}) + "\n")
                bar.update(len(batch))
                bar.set_postfix(em=f"{summarize(trajectories)['em']:.3f}")
            bar.close()
            row = {"env_id": env_id, "policy": policy.name, **summarize(trajectories)}
            row["seconds"] = time.perf_counter() - started
            rows.append(row)
    write_tables(rows, out)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_tables(rows: list[dict[str, Any]], out: Path) -> None:
    (out / "results.md").write_text(markdown_table(rows) + "\n", encoding="utf-8")
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, "reward", "seconds"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    rows = evaluate(args)
    print(markdown_table(rows))
    print(f"\nTrajectories and tables written to {args.out_dir}/")


if __name__ == "__main__":
    main()
