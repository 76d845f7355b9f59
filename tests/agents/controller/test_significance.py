"""agents.controller.significance: paired tests of learned controllers against baselines, per seed and pooled."""

from __future__ import annotations

import math

import pytest

from agents.controller.significance import (
    paired_rows,
    pooled_rows,
    pooled_table,
    read_records,
    write_records,
    write_significance,
)
from agents.training.stats import mcnemar, t_interval
from atommem_env.errors import DataError

FAST = 200  # bootstrap resamples


def records(policy: str, correct: list[int], *, golds: list[str] | None = None) -> list[dict]:
    """One question per episode, episode i reset with seed i, answered right where ``correct[i]`` is 1."""
    golds = golds or [f"gold {i}" for i in range(len(correct))]
    return [{"env_id": "E", "policy": policy, "index": i, "seed": i, "episode_id": f"e/{i}", "question": 0,
             "gold": golds[i], "answer": golds[i] if c else "no", "em": float(c), "f1": float(c), "turns": 7,
             "macros": "answer"} for i, c in enumerate(correct)]


BASE = [1, 0, 0, 1, 0, 0, 1, 0, 0, 0] * 4                # EM 0.3
SEEDS = {"learned:s0": [1, 1, 0, 1, 0, 1, 1, 0, 0, 0] * 4,  # 0.5: +0.2
         "learned:s1": [1, 0, 1, 1, 0, 0, 1, 0, 0, 0] * 4,  # 0.4: +0.1
         "learned:s2": [0, 0, 0, 1, 0, 0, 1, 0, 0, 0] * 4}  # 0.2: -0.1
ALL = records("store-then-answer", BASE) + [r for name, c in SEEDS.items() for r in records(name, c)]


def test_each_learned_controller_is_paired_with_each_baseline():
    rows = paired_rows(ALL + records("random", [0] * 40), FAST)
    assert [(r["policy_a"], r["policy_b"]) for r in rows] == [
        (base, name) for name in SEEDS for base in ("store-then-answer", "random")]
    first = rows[0]
    assert (first["em_a"], first["em_b"], first["em_diff"]) == pytest.approx((0.3, 0.5, 0.2))
    expected = mcnemar([bool(x) for x in BASE], [bool(x) for x in SEEDS["learned:s0"]])
    assert (first["a_only"], first["b_only"], first["mcnemar_p"]) == (0, 8, expected.p_value)
    assert first["em_diff_lo"] <= 0.2 <= first["em_diff_hi"] and first["episodes"] == first["questions"] == 40


def test_pooled_row_averages_the_seeds_and_tests_over_them():
    per_seed = paired_rows(ALL, FAST)
    (row,) = pooled_rows(ALL, per_seed, FAST)
    diffs = [0.2, 0.1, -0.1]
    assert row["seeds"] == 3 and row["em_baseline"] == pytest.approx(0.3)
    assert row["em_learned"] == pytest.approx(0.3 + sum(diffs) / 3) and row["em_diff"] == pytest.approx(sum(diffs) / 3)
    over_seeds = t_interval(diffs)
    assert (row["seed_diff_lo"], row["seed_diff_hi"], row["seed_p"]) == pytest.approx(
        (over_seeds.lo, over_seeds.hi, over_seeds.p_value))
    # the episode bootstrap sees only the test episodes, so it is narrower than the interval over seeds
    assert row["seed_diff_lo"] < row["em_diff_lo"] <= row["em_diff"] <= row["em_diff_hi"] < row["seed_diff_hi"]
    assert (row["seeds_better"], row["seeds_worse"]) == (2, 1)
    assert (row["seeds_mcnemar_better"], row["seeds_mcnemar_worse"]) == (
        sum(r["mcnemar_p"] < 0.05 and r["em_diff"] > 0 for r in per_seed),
        sum(r["mcnemar_p"] < 0.05 and r["em_diff"] < 0 for r in per_seed))


def test_one_seed_has_no_interval_over_seeds_and_no_learned_has_no_pooled_row():
    one = records("store-then-answer", BASE) + records("learned:s0", SEEDS["learned:s0"])
    (row,) = pooled_rows(one, paired_rows(one, FAST), FAST)
    assert math.isnan(row["seed_p"]) and math.isnan(row["seed_diff_lo"])
    assert "| — (one seed) | — |" in pooled_table([row]) and "nan" not in pooled_table([row])
    assert pooled_rows(records("store-then-answer", BASE), [], FAST) == []


def test_unpaired_runs_are_refused():
    other_episodes = records("store-then-answer", BASE) + records("learned:s0", BASE[:-1])
    with pytest.raises(DataError, match="same episodes"):
        paired_rows(other_episodes, FAST)
    other_golds = records("store-then-answer", BASE) + records("learned:s0", BASE, golds=["x"] * 40)
    with pytest.raises(DataError, match="other gold answers"):
        paired_rows(other_golds, FAST)


def test_records_round_trip_through_csv_and_give_the_same_tests(tmp_path):
    write_records(ALL, tmp_path / "episodes.csv")
    again = read_records(tmp_path / "episodes.csv")
    assert again == ALL
    write_records(ALL, tmp_path / "episodes.csv.gz")
    assert read_records(tmp_path / "episodes.csv.gz") == ALL
    assert (tmp_path / "episodes.csv.gz").read_bytes()[:2] == b"\x1f\x8b"  # gzip's magic number
    written = write_significance(again, tmp_path / "tests", FAST)
    assert written == write_significance(ALL, None, FAST)
    assert {p.name for p in (tmp_path / "tests").iterdir()} == {"paired.csv", "paired.md", "pooled.csv", "pooled.md"}
    assert "learned − baseline" in (tmp_path / "tests" / "pooled.md").read_text()
    with pytest.raises(DataError, match="No episodes file"):
        read_records(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="lacks columns"):
        read_records(tmp_path / "bad.csv")
