"""Evaluation: play a policy on AtomMem env ids, keep every trajectory, and summarize them into tables.

The library behind ``experiments/evaluate.py`` (whose docstring describes the files written and ``--resume``).
"""

from __future__ import annotations

import csv
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.registry import make_policy, parse_spec
from agents.training.cli import json_object
from agents.training.envs import EnvSpec
from agents.training.errors import RunError
from agents.training.metrics import summarize
from agents.training.progress import ProgressFactory, no_progress
from agents.training.rollout import Trajectory, rollout
from atommem_env.errors import ConfigError, DataError
from atommem_env.protocol import PROTOCOLS

log = logging.getLogger(__name__)

TRAJECTORIES = "trajectories.jsonl"
BENCHMARKS = ("HotpotQA", "2WikiMultihopQA", "MuSiQue")
PRESETS: dict[str, list[str]] = {
    "paper": [f"AtomMem-{b}-{n}-v0" for b in BENCHMARKS for n in (200, 400, 800)],  # SPEC §9
    "memagent": [f"AtomMem-MemAgent-{b}-{n}-v0" for b in BENCHMARKS for n in (200, 400, 800)],  # its baseline
    "synthetic": ["AtomMem-Synthetic-v0"],
}
DEFAULT_ENV_IDS = ["AtomMem-Synthetic-v0"]
COLUMNS = (
    "env_id", "policy", "episodes", "questions", "em", "f1", "substring_em", "turns", "create_per_turn",
    "read_per_turn", "update_per_turn", "delete_per_turn", "scratchpad_per_turn", "store_size",
    "invalid_per_turn", "truncated",
)


@dataclass
class Args:
    """Command-line arguments (each field is a ``--flag``)."""

    env_ids: list[str] = field(default_factory=lambda: list(DEFAULT_ENV_IDS))
    policy: str = "heuristic"  # a baseline, smollm2, hf:NAME, vllm:NAME or openai:MODEL@URL
    policy_kwargs: str = "{}"  # JSON object of policy options, e.g. '{"temperature": 0, "max_new_tokens": 256}'
    episodes: int = 20
    seed: int = 0
    batch_size: int = 8
    data_dir: str | None = None
    env_kwargs: str = "{}"  # JSON object of extra env options, e.g. '{"top_k": 3}'
    out_dir: str = ""  # empty: a fresh runs/evaluate/<policy>-<time> folder, so a rerun never collides
    preset: str | None = None  # a name of PRESETS; replaces --env-ids
    resume: bool = False  # continue the run in --out-dir instead of refusing to touch it
    no_plots: bool = False  # skip the PNGs (e.g. where matplotlib is not installed)
    protocol: str = "atommem"  # rules of play and scoring for every env: atommem, reference, reference-grouping

    def validate(self) -> None:
        """Check the arguments and expand ``--preset``.

        Raises:
            ConfigError: a value cannot work (the message names the flag and the fix).
        """
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise ConfigError(f"--preset {self.preset!r} is unknown; choose one of {sorted(PRESETS)}.")
            self.env_ids = list(PRESETS[self.preset])
        try:
            parse_spec(self.policy)
        except ConfigError as error:
            raise ConfigError(f"--policy: {error}") from None
        if self.episodes < 1 or self.batch_size < 1:
            raise ConfigError("--episodes and --batch-size must be at least 1.")
        env_kwargs = json_object("--env-kwargs", self.env_kwargs, '{"top_k": 3}')
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"--protocol {self.protocol!r} is unknown; choose one of {sorted(PROTOCOLS)}.")
        if env_kwargs.get("protocol", self.protocol) != self.protocol:
            raise ConfigError("--env-kwargs sets a protocol other than --protocol; pass it once, with --protocol.")
        json_object("--policy-kwargs", self.policy_kwargs, '{"temperature": 0}')
        if not self.out_dir:
            if self.resume:
                raise ConfigError("--resume continues an earlier run: name its folder with --out-dir.")
            self.out_dir = fresh_run_dir(self.policy)


def fresh_run_dir(policy: str, root: Path = Path("runs/evaluate")) -> str:
    """``runs/evaluate/<policy>-<YYYYmmdd-HHMMSS>`` (with a counter if that folder already exists)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", policy.split("@")[0])  # openai:MODEL@URL: no URL in a path
    stem = f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = root / stem, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stem}-{n}"
    return str(candidate)


def load_trajectories(path: Path) -> list[dict[str, Any]]:
    """Read the lines of a ``trajectories.jsonl`` written by :func:`evaluate`, repairing a crash.

    A run killed while writing leaves a truncated last line; it is dropped and the file rewritten
    without it, so that appending to it afterwards gives valid JSON lines again.

    Args:
        path: the file; a missing file reads as empty.

    Returns:
        The decoded lines, in file order.

    Raises:
        DataError: if a line other than the last is not valid JSON (the file is not one this
            script wrote, or was edited), since dropping it would silently lose an episode.
    """
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    records = []
    clean = text.endswith("\n") or not text  # else the next append would glue onto the last line
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise DataError(
                    f"{path}:{number} is not valid JSON and is not the last line, so it is not a crash "
                    "artifact; fix or remove that line, or use another --out-dir."
                ) from None
            log.warning("dropping a truncated last line of %s (an interrupted write)", path)
            clean = False
    if not clean:
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records


def _episode_key(record: dict[str, Any]) -> tuple[str, str, int]:
    return record["env_id"], record["policy"], int(record["index"])


def _previous_episodes(args: Args, path: Path, policy: str) -> dict[tuple[str, str, int], Trajectory]:
    """Episodes already in ``path`` keyed by (env_id, policy, index); refuses to clobber without --resume."""
    if not args.resume:
        if path.exists() and path.stat().st_size > 0:
            raise RunError(
                f"{path} already holds trajectories; pass --resume to continue that run, "
                "or choose another --out-dir to start a new one."
            )
        path.unlink(missing_ok=True)
        return {}
    done: dict[tuple[str, str, int], Trajectory] = {}
    for record in load_trajectories(path):
        key = _episode_key(record)
        if key[1] == policy and record.get("protocol", "atommem") != args.protocol:
            raise RunError(f"{path} holds episodes played under protocol {record.get('protocol', 'atommem')!r}, "
                           f"not --protocol {args.protocol}; resume with that protocol or use another --out-dir.")
        if key[1] == policy and record["seed"] != args.seed + key[2]:
            # Episode i is reset with seed + i; mixing seeds would make the table a blend of two runs.
            raise RunError(
                f"{path} holds {key[0]} episode {key[2]} run with seed {record['seed']}, but --seed "
                f"{args.seed} gives seed {args.seed + key[2]}; resume with the run's --seed or use another --out-dir."
            )
        done.setdefault(key, Trajectory.from_json(record))  # first copy wins if a key was written twice
    return done


def evaluate(args: Args, progress: ProgressFactory = no_progress) -> list[dict[str, Any]]:
    """Run every env id and return one results row per id; also writes the output files.

    With ``args.resume`` only the episodes missing from ``trajectories.jsonl`` are run; the rows
    summarize episodes ``0 .. episodes - 1`` of each env id, old and new together.

    Raises:
        ConfigError: the policy cannot be built from ``--policy`` / ``--policy-kwargs``.
        RunError: ``--out-dir`` holds another run's trajectories (without ``--resume``, or another seed).
        DataError: ``trajectories.jsonl`` is damaged beyond an interrupted last line.
    """
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / TRAJECTORIES
    try:
        policy = make_policy(args.policy, **json.loads(args.policy_kwargs))
    except ConfigError as error:
        raise ConfigError(f"--policy {args.policy} --policy-kwargs {args.policy_kwargs}: {error}") from None
    done = _previous_episodes(args, path, policy.name)
    rows = []
    with open(path, "a", encoding="utf-8") as sink:
        for env_id in args.env_ids:
            env_kwargs = {**json.loads(args.env_kwargs), "protocol": args.protocol}  # every env plays by it
            spec = EnvSpec.from_flags(env_id, env_kwargs, args.data_dir)
            make = spec.factory()
            available = spec.episode_count()
            count = min(args.episodes, available)
            trajectories = [done[k] for i in range(count) if (k := (env_id, policy.name, i)) in done]
            missing = [i for i in range(count) if (env_id, policy.name, i) not in done]
            started = time.perf_counter()
            bar = progress(env_id, count, count - len(missing))
            for start in range(0, len(missing), args.batch_size):  # batches keep the bar and memory honest
                ids = missing[start:start + args.batch_size]
                batch = rollout(make, policy, [args.seed + i for i in ids], env_id=env_id, indices=ids,
                                batch_size=args.batch_size)
                trajectories += batch
                for traj in batch:
                    record = {"policy": policy.name, **traj.to_json()}
                    if args.protocol != "atommem":  # a default run's lines stay as they were
                        record["protocol"] = args.protocol
                    sink.write(json.dumps(record) + "\n")
                sink.flush()  # a crash loses at most the batch being written
                bar.update(len(batch))
                bar.set_postfix(em=f"{summarize(trajectories)['em']:.3f}")
            bar.close()
            row = {"env_id": env_id, "policy": policy.name, "protocol": args.protocol, **summarize(trajectories)}
            row["seconds"] = time.perf_counter() - started  # time of this invocation only
            rows.append(row)
    write_tables(rows, out)
    if not args.no_plots:
        from agents.training.plots import write_plots

        try:
            write_plots(rows, out)
        except ImportError as error:  # the tables are the result; missing plots must not fail the run
            log.warning("%s Tables were written; plots were skipped.", error)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Render ``rows`` as a Markdown table with the :data:`COLUMNS`."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_tables(rows: list[dict[str, Any]], out: Path) -> None:
    """Write ``results.md`` and ``results.csv`` into ``out``."""
    (out / "results.md").write_text(markdown_table(rows) + "\n", encoding="utf-8")
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, "reward", "seconds"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

