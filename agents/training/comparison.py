"""A paired comparison of two evaluation runs on identical episodes.

Two runs of ``experiments/evaluate.py`` with the same ``--seed`` and ``--episodes`` play the same
episodes (episode i of an env id is the source's episode i, reset with seed ``seed + i``), so their
answers can be compared question by question. :func:`compare_runs` matches the episodes by
(env id, index, seed), refuses when the runs did not play the same episodes, and reports per env id
both EMs, the difference B − A with a paired bootstrap interval clustered by episode, and an exact
McNemar test on per-question correctness.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.training.evaluation import TRAJECTORIES
from agents.training.stats import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    WEIGHTINGS,
    mcnemar_by_episode,
    paired_change,
    point_estimate,
)
from atommem_env.errors import DataError

COMPARE_COLUMNS = (
    "env_id", "episodes", "questions", "run_a", "policy_a", "em_a", "run_b", "policy_b", "em_b", "em_diff",
    "em_diff_lo", "em_diff_hi", "episode_em_a", "episode_em_b", "episode_em_diff", "episode_em_diff_lo",
    "episode_em_diff_hi", "a_only", "b_only", "mcnemar_p",
)
EpisodeKey = tuple[str, int, int]  # (env id, index, seed)


def read_run(run: str | Path) -> dict[EpisodeKey, dict[str, Any]]:
    """The episodes of one run, keyed by (env id, index, seed); read only, the file is never changed.

    Args:
        run: a run folder holding ``trajectories.jsonl``, or that file itself.

    Raises:
        DataError: no such file, a line that is not JSON, no episodes, or several policies in one run.
    """
    path = Path(run)
    path = path / TRAJECTORIES if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"No {TRAJECTORIES} at {path}; pass the --out-dir of an experiments/evaluate.py run.")
    episodes: dict[EpisodeKey, dict[str, Any]] = {}
    policies: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(
                f"{path}:{number} is not valid JSON (an interrupted run?); finish it with "
                "experiments/evaluate.py --resume --out-dir on its folder, then compare."
            ) from None
        policies.add(str(record.get("policy", "")))
        episodes.setdefault((record["env_id"], int(record["index"]), int(record["seed"])), record)  # first wins
    if not episodes:
        raise DataError(f"{path} holds no episodes.")
    if len(policies) > 1:
        raise DataError(f"{path} holds episodes of several policies ({', '.join(sorted(policies))}); "
                        "a compared run must hold one policy.")
    return episodes


def compare_runs(run_a: str | Path, run_b: str | Path, *, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """One row per env id comparing run B against run A on the same episodes.

    Returns:
        Rows with the :data:`COMPARE_COLUMNS`: per-question EM of each run (``em_a``, ``em_b``) and of
        their difference B − A with a 95 % paired bootstrap interval, the same per episode
        (``episode_em_*``), the discordant question counts (``a_only``: A right and B wrong; ``b_only``)
        and the exact two-sided McNemar p-value.

    Raises:
        DataError: a run cannot be read, or the runs did not play the same episodes (env ids, indices,
            seeds, or the questions of an episode differ).
        ConfigError: ``resamples`` is out of range.
    """
    a, b = read_run(run_a), read_run(run_b)
    check_same_episodes(a, b, str(run_a), str(run_b))
    env_ids = list(dict.fromkeys(key[0] for key in a))  # in the order of run A's file
    rows = []
    for env_id in env_ids:
        keys = sorted(k for k in a if k[0] == env_id)
        a_em = [[float(x) for x in a[k]["result"]["em"]] for k in keys]
        b_em = [[float(x) for x in b[k]["result"]["em"]] for k in keys]
        rows.append({"env_id": env_id, "run_a": run_name(run_a), "policy_a": a[keys[0]].get("policy", ""),
                     "run_b": run_name(run_b), "policy_b": b[keys[0]].get("policy", ""),
                     **paired_em(a_em, b_em, resamples=resamples, seed=seed)})
    return rows


def run_name(run: str | Path) -> str:
    """A run's folder name (its file's folder when given the file): what tells two runs of one policy apart,
    e.g. a model's checkpoints, which share the policy name ``hf``."""
    path = Path(run)
    return path.parent.name if path.suffix == ".jsonl" else path.name


def paired_em(a_em: Sequence[Sequence[float]], b_em: Sequence[Sequence[float]], *, resamples: int = DEFAULT_RESAMPLES,
              seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """The numbers of one :data:`COMPARE_COLUMNS` row (all but the env id, the run and policy names) for per-question
    EM values of A and B, one list per episode, the same episodes in the same order.

    Raises:
        DataError: the two sides differ in episodes or questions per episode.
    """
    row: dict[str, Any] = {"episodes": len(a_em), "questions": sum(len(v) for v in a_em)}
    for prefix, weighting in WEIGHTINGS:
        row[f"{prefix}em_a"] = point_estimate(a_em, weighting)
        row[f"{prefix}em_b"] = point_estimate(b_em, weighting)
    row.update(paired_change(a_em, b_em, "em", resamples=resamples, seed=seed))
    test = mcnemar_by_episode(a_em, b_em)
    row.update(a_only=test.a_only, b_only=test.b_only, mcnemar_p=test.p_value)
    return row


def check_same_episodes(a: dict[EpisodeKey, dict[str, Any]], b: dict[EpisodeKey, dict[str, Any]],
                        name_a: str, name_b: str) -> None:
    """Raise :class:`DataError` unless ``a`` and ``b`` hold the same episodes with the same questions."""
    if a.keys() != b.keys():
        raise DataError(f"{name_a} and {name_b} did not play the same episodes, so they cannot be paired. "
                        f"{_difference(a, b, name_a, name_b)} Rerun one with the other's --env-ids, --episodes "
                        "and --seed.")
    for key in sorted(a):
        left, right = a[key], b[key]
        for what, field in (("episode id", lambda r: r.get("episode_id")),
                            ("gold answers", lambda r: r["result"].get("golds"))):
            if field(left) != field(right):
                raise DataError(
                    f"{key[0]} episode {key[1]} (seed {key[2]}) has different {what} in {name_a} "
                    f"({field(left)!r}) and {name_b} ({field(right)!r}): the same index and seed gave other "
                    "questions (another data version or env option?), so the runs cannot be paired."
                )


def _difference(a: dict[EpisodeKey, Any], b: dict[EpisodeKey, Any], name_a: str, name_b: str) -> str:
    envs_a, envs_b = sorted({k[0] for k in a}), sorted({k[0] for k in b})
    if envs_a != envs_b:
        return f"Env ids: {name_a} has {envs_a}, {name_b} has {envs_b}."
    seeds_a = {(k[0], k[1]): k[2] for k in a}
    seeds_b = {(k[0], k[1]): k[2] for k in b}
    for pair in sorted(seeds_a.keys() & seeds_b.keys()):
        if seeds_a[pair] != seeds_b[pair]:
            return (f"Seeds: {pair[0]} episode {pair[1]} was reset with seed {seeds_a[pair]} in {name_a} and "
                    f"{seeds_b[pair]} in {name_b} (different --seed).")
    only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    return (f"Episodes: {len(only_a)} only in {name_a} (e.g. {only_a[:3]}), {len(only_b)} only in {name_b} "
            f"(e.g. {only_b[:3]}) (different --episodes?).")


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`compare_runs` rows: ``estimate [lo, hi]`` for the differences."""
    header = ["env id", "episodes", "questions", "A", "EM A", "B", "EM B",
              "EM B − A [95 % CI]", "episode EM B − A [95 % CI]", "A only", "B only", "McNemar p"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["env_id"], str(r["episodes"]), str(r["questions"]), _label(r, "a"),
                 f"{r['em_a']:.3f}", _label(r, "b"), f"{r['em_b']:.3f}", _interval(r, "em_diff"),
                 _interval(r, "episode_em_diff"), str(r["a_only"]), str(r["b_only"]), f"{r['mcnemar_p']:.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _label(row: dict[str, Any], side: str) -> str:
    """``run: policy`` where the row names runs (evaluate.py --compare), else the policy."""
    run, policy = row.get(f"run_{side}"), row[f"policy_{side}"]
    return f"{run}: {policy}" if run else policy


def _interval(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:+.3f} [{row[key + '_lo']:+.3f}, {row[key + '_hi']:+.3f}]"


def write_comparison(rows: Sequence[dict[str, Any]], out: Path) -> None:
    """Write ``compare.md`` and ``compare.csv`` into ``out`` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(comparison_table(rows) + "\n", encoding="utf-8")
    with open(out / "compare.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COMPARE_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
