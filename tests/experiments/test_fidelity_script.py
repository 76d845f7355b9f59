"""experiments/fidelity.py: the table is written, a rerun continues, and bad flags are refused clearly."""

from __future__ import annotations

import csv
import json

import pytest

from atommem_env.protocol import ATOMMEM, MEMAGENT_RULES, REFERENCE, differing_rules
from experiments import fidelity
from tests.support.datasets import FIXTURES

SMALL = json.dumps({"num_documents": 10, "questions_per_episode": "single"})


def _run(out, *extra, episodes=2):
    fidelity.main(["--env-ids", "AtomMem-HotpotQA-v0", "--data-dir", str(FIXTURES), "--env-kwargs", SMALL,
                   "--episodes", str(episodes), "--resamples", "100", "--out-dir", str(out), *extra])


def _lines(out):
    return {p.name: len(p.read_text().splitlines()) for p in sorted((out / "trajectories").rglob("*.jsonl"))}


def test_a_small_run_writes_the_table_and_a_rerun_plays_nothing_again(tmp_path, capsys) -> None:
    _run(tmp_path, "--rules", "gold_matching", "turn_budget", "--directions", "fix", "quirk")
    with open(tmp_path / "fidelity.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["variant"] for r in rows] == ["reference", "atommem", "reference+gold_matching",
                                            "reference+turn_budget", "atommem-gold_matching", "atommem-turn_budget"]
    # The heuristic is deterministic: an episode whose observations the rule leaves unchanged is replayed.
    assert [r["measured"] for r in rows] == ["played 2/2", "played 2/2", "re-scored (reference)", "played 0/2",
                                             "re-scored (atommem)", "played 0/2"]
    assert rows[0]["em_diff"] == "" and all(r["em_diff_lo"] != "" for r in rows[1:])
    assert all(r["episodes"] == "2" for r in rows)
    assert all(r["invalid_per_turn"] == "0.0" for r in rows)  # the heuristic writes only well-formed actions
    table = (tmp_path / "fidelity.md").read_text()
    assert "`reference+gold_matching` vs `reference`" in table and "McNemar" in table
    assert "invalid actions/turn" in table
    assert "`atommem` vs `reference`" in capsys.readouterr().out
    before = _lines(tmp_path)
    assert set(before.values()) == {2} and len(before) == 6
    _run(tmp_path, "--rules", "gold_matching", "turn_budget", "--directions", "fix", "quirk")
    assert _lines(tmp_path) == before
    _run(tmp_path, "--no-breakdown", episodes=3)  # the fixture's 3 episodes: only the missing one is played
    assert _lines(tmp_path)["reference.jsonl"] == 3


def test_a_memagent_id_gets_a_variant_for_each_rule_its_env_reads(tmp_path) -> None:
    fidelity.main(["--env-ids", "AtomMem-MemAgent-HotpotQA-v0", "--data-dir", str(FIXTURES), "--env-kwargs", SMALL,
                   "--episodes", "2", "--resamples", "100", "--out-dir", str(tmp_path), "--policy", "always-yes"])
    with open(tmp_path / "fidelity.csv", encoding="utf-8") as handle:
        rows = {r["variant"]: r for r in csv.DictReader(handle)}
    read = [r for r in differing_rules(REFERENCE, ATOMMEM) if r in MEMAGENT_RULES]
    assert list(rows) == ["reference", "atommem", *(f"reference+{r}" for r in read)]
    assert "reference+any_word_tags" not in rows and "reference+unboxed_answer_rewrites_memory" in rows
    assert rows["reference+gold_matching"]["measured"] == "re-scored (reference)"
    assert all(r["episodes"] == "2" for r in rows.values())


def test_a_rerun_with_another_policy_in_the_same_folder_is_refused(tmp_path) -> None:
    _run(tmp_path, "--no-breakdown")
    with pytest.raises(SystemExit, match="holds episodes with policy"):
        _run(tmp_path, "--no-breakdown", "--policy", "no-memory")


@pytest.mark.parametrize("flags, message", [
    (["--directions", "sideways"], "--directions"),
    (["--rules", "grouping"], "agree"),
    (["--rules", "nonsense"], "unknown"),
    (["--env-kwargs", '{"max_turns": 5}'], "override the protocol"),
    (["--env-kwargs", "[1]"], "JSON object"),
    (["--policy", "nonsense"], "--policy"),
    (["--env-ids", "AtomMem-Nope-v0"], "not a registered id"),
    (["--episodes", "0"], "at least 1"),
    (["--resamples", "5"], "--resamples"),
])
def test_bad_flags_are_refused_with_a_message(tmp_path, flags, message) -> None:
    with pytest.raises(SystemExit, match=message):
        fidelity.main(["--out-dir", str(tmp_path), *flags])
    assert not (tmp_path / "fidelity.md").exists()


def test_help_and_an_unknown_preset(capsys) -> None:
    with pytest.raises(SystemExit):
        fidelity.main(["--help"])
    assert "--directions" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        fidelity.main(["--preset", "nope"])
    assert "invalid choice" in capsys.readouterr().err
