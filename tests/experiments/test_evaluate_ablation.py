"""experiments/evaluate.py --ablation: every env plays it, it is recorded, and a run never mixes two."""

from __future__ import annotations

import csv
import json

import pytest

from agents.training import evaluation
from agents.training.errors import RunError
from atommem_env.ablations import ABLATIONS
from atommem_env.errors import ConfigError
from experiments import evaluate


def _args(tmp_path, *extra):
    return ["--episodes", "2", "--batch-size", "2", "--out-dir", str(tmp_path), "--no-plots", *extra]


def _rows(tmp_path):
    with open(tmp_path / "results.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _lines(tmp_path):
    return [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]


def test_ablation_reaches_every_env_with_the_protocol_and_is_recorded(tmp_path) -> None:
    evaluate.main(_args(tmp_path, "--ablation", "no_store", "--protocol", "reference"))
    assert [line["env_options"] for line in _lines(tmp_path)] == [{"protocol": "reference", "ablation": "no_store"}] * 2
    for line in _lines(tmp_path):  # played: entries are stored, but never shown under no_store
        assert line["turns"][-1]["memory_size"] > 0 and not any("Memory 1:" in t["user"] for t in line["turns"])
    assert [(r["protocol"], r["ablation"]) for r in _rows(tmp_path)] == [("reference", "no_store")]


def test_without_an_ablation_the_options_stay_as_they_were(tmp_path) -> None:
    evaluate.main(_args(tmp_path, "--ablation", "none"))
    assert [line["env_options"] for line in _lines(tmp_path)] == [{}, {}]
    assert [r["ablation"] for r in _rows(tmp_path)] == ["none"]


@pytest.mark.parametrize("flags", [["--ablation", "k3"], []])
def test_resume_refuses_another_ablation(tmp_path, flags) -> None:
    evaluate.main(_args(tmp_path, "--ablation", "k12"))
    with pytest.raises(SystemExit, match="--ablation"):
        evaluate.main(_args(tmp_path, "--resume", *flags))
    evaluate.main(_args(tmp_path, "--resume", "--ablation", "k12"))  # its own ablation continues it
    assert len(_lines(tmp_path)) == 2


def test_resume_of_lines_written_before_options_were_recorded_refuses_an_ablation(tmp_path) -> None:
    evaluate.main(_args(tmp_path))
    path = tmp_path / "trajectories.jsonl"
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "env_options"}) + "\n"
                            for r in _lines(tmp_path)))
    with pytest.raises(RunError, match="without an ablation"):
        evaluation.evaluate(evaluate.parse_args(_args(tmp_path, "--resume", "--ablation", "k3")))


def test_an_unknown_name_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(SystemExit) as refused:
        evaluate.parse_args(["--ablation", "no_ltm"])
    message = str(refused.value)
    assert "no_ltm" in message and all(repr(name) in message for name in ["none", *ABLATIONS])


def test_the_ablation_is_passed_once_and_only_to_atommem_ids() -> None:
    with pytest.raises(ConfigError, match="pass it once"):
        evaluation.Args(ablation="k3", env_kwargs='{"ablation": "k12"}', out_dir="x").validate()
    with pytest.raises(ConfigError, match="pass it once"):  # an ablation goes through --ablation only
        evaluation.Args(env_kwargs='{"ablation": "k12"}', out_dir="x").validate()
    with pytest.raises(ConfigError, match="MemAgent"):
        evaluation.Args(ablation="no_store", preset="memagent", out_dir="x").validate()
