"""agents/training/cli.py: the resume command a script prints on Ctrl-C, and the exits of exit_on_errors."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from agents.training.cli import exit_on_errors, resume_command
from atommem_env.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "experiments" / "evaluate.py")


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the command names the script relative to the working directory


@pytest.mark.parametrize("argv", [
    ["--episodes", "5", "--out-dir", "runs/a b", "--resume"],
    ["--episodes", "5", "--out-dir=runs/a b"],
    ["--out", "runs/a b", "--episodes", "5", "--res"],  # argparse's unambiguous prefixes
    ["--episodes", "5"],  # the script chose the folder
])
def test_the_resume_command_names_the_folder_and_resumes_once(argv) -> None:
    command = resume_command(SCRIPT, argv, "runs/a b")
    assert command == "python experiments/evaluate.py --episodes 5 --out-dir 'runs/a b' --resume"
    assert shlex.split(command)[-3:] == ["--out-dir", "runs/a b", "--resume"]


def test_a_script_that_continues_by_rerunning_adds_no_flag() -> None:
    argv = ["--policy", "openai:AtomMem@http://localhost:8000/v1", "--resamples", "100"]
    assert resume_command(SCRIPT, argv, "runs/fidelity", resume_flag=None) == \
        "python experiments/evaluate.py --policy openai:AtomMem@http://localhost:8000/v1 --resamples 100 " \
        "--out-dir runs/fidelity"


def test_exit_on_errors_exits_with_the_message_or_130(capsys) -> None:
    with pytest.raises(SystemExit) as exit_, exit_on_errors("evaluate: "):
        raise DataError("no data")
    assert exit_.value.code == "evaluate: no data"
    with pytest.raises(SystemExit) as exit_, exit_on_errors(resume="python x.py --resume"):
        raise KeyboardInterrupt
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "\nInterrupted. Continue it with:\n  python x.py --resume\n"
    with pytest.raises(ZeroDivisionError), exit_on_errors():  # a bug keeps its traceback
        _ = 1 / 0
