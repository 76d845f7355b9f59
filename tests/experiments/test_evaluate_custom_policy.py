"""The README's own AlwaysStore, saved in a file, evaluated by the harness as written: tables, JSONL, resume."""

import json
import re
from pathlib import Path

import pytest

from agents.training import evaluation
from agents.training.rollout import Trajectory
from experiments import evaluate

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
ALWAYS_STORE = next(s for s in re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL) if "class AlwaysStore" in s)


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "my_policy.py"
    path.write_text(ALWAYS_STORE, encoding="utf-8")
    return path


def run(out, spec, *extra):
    evaluate.main(["--policy", spec, "--episodes", "2", "--batch-size", "2", "--out-dir", str(out), "--no-plots",
                   *extra])


def test_the_readme_policy_runs_through_evaluate_py(policy_file, tmp_path, capsys):
    run(tmp_path / "out", f"{policy_file}:AlwaysStore")
    assert "| AtomMem-Synthetic-v0 | always-store | 2 |" in capsys.readouterr().out
    lines = [json.loads(x) for x in (tmp_path / "out" / "trajectories.jsonl").read_text().splitlines()]
    assert [(x["policy"], x["index"]) for x in lines] == [("always-store", 0), ("always-store", 1)]
    assert all(turn["ops"][0]["op"] == "add_memory" for turn in lines[0]["turns"] if turn["phase"] == "reading")
    assert "AtomMem-Synthetic-v0,always-store,2," in (tmp_path / "out" / "results.csv").read_text()


def test_a_resumed_custom_run_plays_only_the_missing_episodes(policy_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the relative form, as the README writes it
    run(tmp_path / "out", "my_policy.py:AlwaysStore")
    played: list[int] = []
    real = evaluation.rollout
    monkeypatch.setattr(evaluation, "rollout", lambda *a, indices, **k: played.extend(indices) or real(
        *a, indices=indices, **k))
    run(tmp_path / "out", "my_policy.py:AlwaysStore", "--resume", "--episodes", "3")
    assert played == [2]
    assert "AtomMem-Synthetic-v0,always-store,3," in (tmp_path / "out" / "results.csv").read_text()


def test_options_a_custom_class_does_not_take_stop_the_run(policy_file, tmp_path):
    with pytest.raises(SystemExit, match="AlwaysStore.*unexpected keyword argument 'top_k'.*no keyword arguments"):
        run(tmp_path / "out", f"{policy_file}:AlwaysStore", "--policy-kwargs", '{"top_k": 3}')


@pytest.mark.parametrize("spec, message", [
    ("missing.py:AlwaysStore", "--policy: policy 'missing.py:AlwaysStore': there is no file"),
    # The file exists: the name is checked when the policy is built, still before any episode.
    ("my_policy.py:AlwaysStores", "has no 'AlwaysStores'; it defines AlwaysStore"),
])
def test_a_wrong_spec_stops_before_any_episode(policy_file, tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(evaluation, "rollout", lambda *a, **k: pytest.fail("no episode should run"))
    with pytest.raises(SystemExit, match=message):
        run(tmp_path / "out", spec)


def test_results_row_is_the_row_evaluate_writes(policy_file, tmp_path):
    run(tmp_path / "out", f"{policy_file}:AlwaysStore")
    lines = (tmp_path / "out" / "trajectories.jsonl").read_text().splitlines()
    trajectories = [Trajectory.from_json(json.loads(x)) for x in lines]
    row = evaluation.results_row("AtomMem-Synthetic-v0", "always-store", trajectories, {})
    written = (tmp_path / "out" / "results.md").read_text()
    (tmp_path / "again").mkdir()
    evaluation.write_tables([row], tmp_path / "again")
    assert (tmp_path / "again" / "results.md").read_text() == written
    assert row["protocol"] == "atommem" and row["env_options"] == "{}" and row["episodes"] == 2
