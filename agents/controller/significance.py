"""Paired tests of learned controllers against each static workflow, per training seed and pooled over seeds.

Input: the per-question records of :func:`agents.controller.compare.question_records` (or the
``episodes.csv`` they were written to). Every policy played the same episodes, so each comparison pairs
the answers question by question:

* **per seed** (:func:`paired_rows`): one learned controller against one baseline, with the EM difference
  and its 95 % paired bootstrap interval resampling whole episodes, and the exact McNemar test
  (:func:`agents.training.comparison.paired_em`);
* **pooled** (:func:`pooled_rows`): all learned controllers (one per training seed) against one baseline.
  The EM difference averaged over seeds gets two intervals, for two sources of chance: a paired bootstrap
  over episodes of the seed-averaged answers (which test episodes were drawn) and Student's t-interval over
  the seeds' differences (which training run was drawn; the wider, and the one that says whether training
  reliably beats the baseline).
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from agents.controller.compare import EPISODE_COLUMNS, LEARNED
from agents.controller.macros import MACROS
from agents.training.comparison import COMPARE_COLUMNS, comparison_table, paired_em
from agents.training.stats import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    bootstrap_ci,
    paired_bootstrap,
    point_estimate,
    t_interval,
)
from atommem_env.errors import DataError

POOLED_COLUMNS = ("env_id", "baseline", "seeds", "episodes", "questions", "em_baseline", "em_learned", "em_diff",
                  "em_diff_lo", "em_diff_hi", "seed_diff_lo", "seed_diff_hi", "seed_p", "seeds_better",
                  "seeds_worse", "seeds_mcnemar_better", "seeds_mcnemar_worse")
RECORD_COLUMNS = ("env_id", "policy", "episodes", "questions", "em", "em_lo", "em_hi", "f1", "turns",
                  *(f"macro/{m}" for m in MACROS))
ALPHA = 0.05  # a seed's McNemar test counts as significant below this
_INTS, _FLOATS = ("index", "seed", "question", "turns"), ("em", "f1")
EpisodeEm = dict[tuple[int, int], list[tuple[str, float]]]  # (index, seed) -> (gold, EM) per question


def write_records(records: Sequence[dict[str, Any]], path: Path) -> None:
    """Write per-question records as CSV with the :data:`EPISODE_COLUMNS` (gzipped when ``path`` ends in ``.gz``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(EPISODE_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of an ``episodes.csv`` (or ``episodes.csv.gz``) written by :func:`write_records`, with numbers
    as numbers.

    Raises:
        DataError: no such file, or a column missing.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No episodes file at {path}; pass the episodes.csv of a controller_compare.py run.")
    with _open(path, "r") as handle:
        rows = list(csv.DictReader(handle))
    missing = [c for c in EPISODE_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise DataError(f"{path} has no records or lacks columns {missing}; it is not a controller_compare.py "
                        "episodes.csv.")
    return [{**row, **{k: int(row[k]) for k in _INTS}, **{k: float(row[k]) for k in _FLOATS}} for row in rows]


def episode_em(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, EpisodeEm]]:
    """``{env id: {policy: {(index, seed): [(gold, EM) per question]}}}``, policies in order of appearance.

    Raises:
        DataError: a question appears twice for one policy (the same run's file passed twice?).
    """
    grouped: dict[str, dict[str, EpisodeEm]] = {}
    seen: set[tuple[Any, ...]] = set()
    for r in sorted(records, key=lambda r: r["question"]):
        key = (r["env_id"], r["policy"], r["index"], r["seed"], r["question"])
        if key in seen:
            raise DataError(f"{r['policy']} answered question {r['question']} of {r['env_id']} episode {r['index']} "
                            f"(seed {r['seed']}) twice: pass each run's episodes.csv once.")
        seen.add(key)
        episodes = grouped.setdefault(r["env_id"], {}).setdefault(r["policy"], {})
        episodes.setdefault((r["index"], r["seed"]), []).append((str(r["gold"]), float(r["em"])))
    return grouped


def record_summary(records: Sequence[dict[str, Any]], resamples: int = DEFAULT_RESAMPLES) -> list[dict[str, Any]]:
    """One :data:`RECORD_COLUMNS` row per (env id, policy) from per-question records: EM with its 95 % interval
    clustered by episode, F1, turns per episode and the share of turns per macro."""
    rows = []
    for env_id, by_policy in episode_em(records).items():
        for policy, episodes in by_policy.items():
            mine = [r for r in records if r["env_id"] == env_id and r["policy"] == policy]
            firsts = [r for r in mine if r["question"] == 0]  # one per episode: its turns and macros
            macros = [m for r in firsts for m in str(r["macros"]).split()]
            em = bootstrap_ci([[x for _, x in v] for v in episodes.values()], resamples=resamples)
            rows.append({"env_id": env_id, "policy": policy, "episodes": len(episodes), "questions": len(mine),
                         "em": em.estimate, "em_lo": em.lo, "em_hi": em.hi,
                         "f1": float(np.mean([r["f1"] for r in mine])),
                         "turns": float(np.mean([r["turns"] for r in firsts])),
                         **{f"macro/{m}": macros.count(m) / max(1, len(macros)) for m in MACROS}})
    return rows


def paired_values(a: EpisodeEm, b: EpisodeEm, name_a: str, name_b: str) -> tuple[list[list[float]], list[list[float]]]:
    """The per-question EMs of A and B, one list per episode in episode order, once they are shown to be paired.

    Raises:
        DataError: A and B did not play the same episodes, or an episode's gold answers differ.
    """
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())[:3]
        raise DataError(f"{name_a} and {name_b} did not play the same episodes (e.g. (index, seed) {only}); "
                        "play them in one controller_compare.py run.")
    keys = sorted(a)
    for key in keys:
        if [g for g, _ in a[key]] != [g for g, _ in b[key]]:
            raise DataError(f"Episode {key} has other gold answers under {name_a} than under {name_b}: not the "
                            "same questions, so they cannot be paired.")
    return [[em for _, em in a[k]] for k in keys], [[em for _, em in b[k]] for k in keys]


def paired_rows(records: Sequence[dict[str, Any]], resamples: int = DEFAULT_RESAMPLES,
                seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """One :data:`~agents.training.comparison.COMPARE_COLUMNS` row per (env id, learned policy, baseline):
    A is the baseline, B the learned controller, so a positive difference favours the learned one."""
    rows = []
    for env_id, by_policy in episode_em(records).items():
        learned, baselines = _split(by_policy)
        for name in learned:
            for base in baselines:
                a_em, b_em = paired_values(by_policy[base], by_policy[name], base, name)
                rows.append({"env_id": env_id, "policy_a": base, "policy_b": name,
                             **paired_em(a_em, b_em, resamples=resamples, seed=seed)})
    return rows


def pooled_rows(records: Sequence[dict[str, Any]], per_seed: Sequence[dict[str, Any]],
                resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """One :data:`POOLED_COLUMNS` row per (env id, baseline): every learned controller against it.

    ``per_seed`` are the :func:`paired_rows` of the same records (their differences and McNemar tests).
    ``em_learned`` and ``em_diff`` are means over the learned controllers; ``em_diff_lo/hi`` the paired
    bootstrap over episodes of the seed-averaged answers; ``seed_diff_lo/hi`` and ``seed_p`` Student's
    t-interval and t-test over the per-seed differences (NaN with a single seed).
    """
    rows = []
    for env_id, by_policy in episode_em(records).items():
        learned, baselines = _split(by_policy)
        if not learned:
            continue
        for base in baselines:
            sides = [paired_values(by_policy[base], by_policy[name], base, name) for name in learned]
            a_em = sides[0][0]
            mean_b = [list(np.mean([b[i] for _, b in sides], axis=0)) for i in range(len(a_em))]
            diff = paired_bootstrap(a_em, mean_b, resamples=resamples, seed=seed)
            tests = [r for r in per_seed if r["env_id"] == env_id and r["policy_a"] == base]
            diffs = [r["em_diff"] for r in tests]
            over_seeds = t_interval(diffs) if len(diffs) > 1 else None
            nan = float("nan")
            rows.append({
                "env_id": env_id, "baseline": base, "seeds": len(learned), "episodes": len(a_em),
                "questions": sum(map(len, a_em)), "em_baseline": point_estimate(a_em),
                "em_learned": point_estimate(mean_b), "em_diff": diff.estimate, "em_diff_lo": diff.lo,
                "em_diff_hi": diff.hi, "seed_diff_lo": over_seeds.lo if over_seeds else nan,
                "seed_diff_hi": over_seeds.hi if over_seeds else nan,
                "seed_p": over_seeds.p_value if over_seeds else nan,
                "seeds_better": sum(d > 0 for d in diffs), "seeds_worse": sum(d < 0 for d in diffs),
                "seeds_mcnemar_better": sum(r["mcnemar_p"] < ALPHA and r["em_diff"] > 0 for r in tests),
                "seeds_mcnemar_worse": sum(r["mcnemar_p"] < ALPHA and r["em_diff"] < 0 for r in tests),
            })
    return rows


def pooled_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`pooled_rows`: the differences as ``estimate [lo, hi]``."""
    header = ["env id", "baseline", "seeds", "questions", "EM baseline", "EM learned (mean)",
              "learned − baseline [95 % CI, episodes]", "[95 % CI, seeds]", "t-test p (seeds)",
              "seeds better / worse", "seeds McNemar p < 0.05 better / worse"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["env_id"], r["baseline"], str(r["seeds"]), str(r["questions"]), f"{r['em_baseline']:.3f}",
                 f"{r['em_learned']:.3f}", f"{r['em_diff']:+.3f} [{r['em_diff_lo']:+.3f}, {r['em_diff_hi']:+.3f}]",
                 *((f"[{r['seed_diff_lo']:+.3f}, {r['seed_diff_hi']:+.3f}]", f"{r['seed_p']:.3g}") if r["seeds"] > 1
                   else ("— (one seed)", "—")),
                 f"{r['seeds_better']} / {r['seeds_worse']}",
                 f"{r['seeds_mcnemar_better']} / {r['seeds_mcnemar_worse']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_significance(records: Sequence[dict[str, Any]], out: Path | None,
                       resamples: int = DEFAULT_RESAMPLES) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The :func:`paired_rows` and :func:`pooled_rows` of ``records``, also written as ``paired.csv`` /
    ``paired.md`` and ``pooled.csv`` / ``pooled.md`` into ``out`` unless it is None."""
    per_seed = paired_rows(records, resamples)
    pooled = pooled_rows(records, per_seed, resamples)
    if out is None:
        return per_seed, pooled
    out.mkdir(parents=True, exist_ok=True)
    for name, rows, columns, table in (("paired", per_seed, COMPARE_COLUMNS, comparison_table(per_seed)),
                                       ("pooled", pooled, POOLED_COLUMNS, pooled_table(pooled))):
        (out / f"{name}.md").write_text(table + "\n", encoding="utf-8")
        with open(out / f"{name}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows(rows)
    return per_seed, pooled


def _open(path: Path, mode: str) -> IO[str]:
    """A text handle on ``path`` for the csv module, through gzip when the name ends in ``.gz``."""
    if path.suffix != ".gz":
        return open(path, mode, newline="", encoding="utf-8")
    if mode == "w":
        return gzip.open(path, "wt", newline="", encoding="utf-8")
    return gzip.open(path, "rt", newline="", encoding="utf-8")


def _split(by_policy: dict[str, EpisodeEm]) -> tuple[list[str], list[str]]:
    """The learned policies (``learned:*``) and the others (the baselines), each in order of appearance."""
    learned = [p for p in by_policy if p.split(":")[0] == LEARNED]
    return learned, [p for p in by_policy if p not in learned]
