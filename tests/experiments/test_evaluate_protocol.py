"""experiments/evaluate.py --protocol: every env plays by it, and a run never mixes two protocols."""

from __future__ import annotations

import json

import pytest

from agents.training.errors import RunError
from experiments import evaluate


def _run(tmp_path, *extra):
    evaluate.main(["--episodes", "2", "--batch-size", "2", "--out-dir", str(tmp_path), "--no-plots", *extra])


def test_protocol_reaches_every_env_and_is_recorded(tmp_path, capsys) -> None:
    _run(tmp_path, "--protocol", "reference")
    lines = [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert [line["protocol"] for line in lines] == ["reference", "reference"]


def test_resume_refuses_another_protocol(tmp_path) -> None:
    _run(tmp_path, "--protocol", "reference")
    with pytest.raises((RunError, SystemExit)):
        _run(tmp_path, "--resume")


def test_unknown_protocol_is_refused(tmp_path) -> None:
    with pytest.raises(SystemExit):
        _run(tmp_path, "--protocol", "paper")
