"""experiments/evaluate.py --protocol: every env plays by it, and a run never mixes two protocols."""

from __future__ import annotations

import csv
import json

import pytest

from agents.training.errors import RunError
from experiments import evaluate


def _run(tmp_path, *extra):
    evaluate.main(["--episodes", "2", "--batch-size", "2", "--out-dir", str(tmp_path), "--no-plots", *extra])


def test_protocol_reaches_every_env_and_is_recorded(tmp_path, capsys) -> None:
    _run(tmp_path, "--protocol", "reference")
    lines = [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert [line["env_options"]["protocol"] for line in lines] == ["reference", "reference"]
    with open(tmp_path / "results.csv", encoding="utf-8") as handle:
        assert [row["protocol"] for row in csv.DictReader(handle)] == ["reference"]


def test_resume_refuses_another_protocol(tmp_path) -> None:
    _run(tmp_path, "--protocol", "reference")
    with pytest.raises(SystemExit, match="protocol"):
        _run(tmp_path, "--resume")


def test_resume_of_lines_written_before_options_were_recorded_refuses_another_protocol(tmp_path) -> None:
    _run(tmp_path)
    path = tmp_path / "trajectories.jsonl"
    old = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "env_options"}) + "\n" for r in old))
    with pytest.raises(RunError, match="protocol 'atommem'"):
        from agents.training import evaluation

        evaluation.evaluate(evaluate.parse_args(["--episodes", "2", "--out-dir", str(tmp_path), "--no-plots",
                                                 "--resume", "--protocol", "reference"]))


def test_unknown_protocol_is_refused(tmp_path) -> None:
    with pytest.raises(SystemExit):
        _run(tmp_path, "--protocol", "paper")


def test_a_memagent_id_runs_under_the_reference_protocol(tmp_path, capsys) -> None:
    """evaluate.py --protocol reference on a MemAgent id, end to end on the official-format fixture (one
    episode of three questions, one of them yes/no): "yes" scores every question under the reference's
    any-gold matching, one under ours."""
    from tests.support.datasets import FIXTURES

    em = {}
    for protocol in ("reference", "atommem"):
        out = tmp_path / protocol
        evaluate.main(["--env-ids", "AtomMem-MemAgent-HotpotQA-v0", "--policy", "always-yes", "--data-dir",
                       str(FIXTURES), "--out-dir", str(out), "--no-plots", "--env-kwargs", '{"num_documents": 10}',
                       "--protocol", protocol])
        assert "| AtomMem-MemAgent-HotpotQA-v0 | always-yes | 1 | 3 |" in capsys.readouterr().out
        (line,) = [json.loads(text) for text in (out / "trajectories.jsonl").read_text().splitlines()]
        assert line["env_options"].get("protocol", "atommem") == protocol
        assert line["result"]["answers"] == ["yes"] * 3 and len(line["turns"]) == 4  # 1 chunk, 3 answers
        em[protocol] = line["result"]["em"]
    assert em == {"reference": [1.0, 1.0, 1.0], "atommem": [0.0, 1.0, 0.0]}
