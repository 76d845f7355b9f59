"""benchmarks/bench_scripted.py: both matchers timed on the same episodes, their responses compared."""

from __future__ import annotations

import json

import pytest

from agents import text as T
from benchmarks import bench_scripted
from tests.support.datasets import FIXTURES


def test_scripted_benchmark_times_both_matchers_and_checks_they_agree(tmp_path, capsys):
    out = tmp_path / "scripted.json"
    argv = ["--data-dir", str(FIXTURES), "--documents", "10", "--episodes", "2", "--repeats", "1", "--json", str(out)]
    assert bench_scripted.main(argv) == 0
    result = json.loads(out.read_text())
    rows = {(r["policy"], r["matcher"]): r for r in result["rows"]}
    assert set(rows) == {(p, m) for p in ("heuristic", "heuristic-scratchpad") for m in ("before", "after")}
    assert all(r["identical_responses"] and r["episodes"] == 2 and r["env_cpu_ms"] > 0 for r in rows.values())
    assert len(result["runs"]) == 8 and "cpu_flags" in result["machine"]
    assert "episode/env CPU" in capsys.readouterr().out


def test_the_before_matcher_is_the_regex_one_and_is_put_back():
    current = T.mentioning
    with bench_scripted.matcher("before"):
        assert T.mentions is bench_scripted.regex_mentions
        assert T.mentioning(["New York", "York"], ["new york"]) == [True, False]
    assert T.mentioning is current
    with pytest.raises(ValueError, match="before"):
        with bench_scripted.matcher("faster"):
            pass


def test_a_difference_between_the_matchers_is_reported():
    runs = [{"policy": "heuristic", "matcher": m, "index": 0, "responses_sha256": m, "policy_s": 1.0,
             "policy_cpu_s": 1.0, "env_s": 1.0, "env_cpu_s": 1.0} for m in ("before", "after")]
    assert not any(r["identical_responses"] for r in bench_scripted.rows(runs))


def test_scripted_benchmark_skips_clearly_without_the_data(tmp_path, capsys):
    assert bench_scripted.main(["--data-dir", str(tmp_path)]) == 0
    assert "skipped: no HotpotQA data" in capsys.readouterr().out
