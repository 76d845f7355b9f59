"""An API key never reaches stdout, stderr, logs, run records or ``repr`` (``atommem_env/credentials.py``).

``evaluate.py`` runs in a child process against a fake OpenAI-compatible server, with the key in an
environment variable named by ``--policy-kwargs '{"api_key_env": ...}'``: the server receives it, and
nothing the run prints or writes holds it, not even the retry warnings of a failing server. A key put
on the command line (discouraged) stays out of every message too, typo or not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from agents.openai_policy import OpenAIChatPolicy
from agents.training.fidelity import FidelityArgs, write_tables
from tests.support.fake_openai import FakeServer, Reply, agent_reply

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-test-3b9f7e21c0d4a865"


def evaluate(flags: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "experiments/evaluate.py", *flags], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **env}, timeout=300)


def files_hold(folder: Path, secret: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_a_key_named_by_api_key_env_is_sent_and_never_printed_or_recorded(tmp_path: Path) -> None:
    def respond(body: dict[str, Any], n: int) -> Reply:
        if n == 1:  # one failure first: the retry is logged (with the URL, never the key)
            return 503, {}, {"error": {"message": "warming up"}}
        return agent_reply(body)

    out = tmp_path / "run"
    with FakeServer(respond) as server:
        done = evaluate(["--policy", f"openai:AtomMem@{server.base_url}", "--episodes", "2", "--no-plots",
                         "--policy-kwargs", json.dumps({"api_key_env": "MY_SERVER_KEY", "backoff": 0}),
                         "--out-dir", str(out)], {"MY_SERVER_KEY": KEY})
    assert done.returncode == 0, done.stderr[-2000:]
    assert {headers["Authorization"] for _, headers, _ in server.requests} == {f"Bearer {KEY}"}
    assert "retry 1/3" in done.stderr  # the log path ran
    assert KEY not in done.stdout and KEY not in done.stderr
    assert files_hold(out, KEY) == [] and (out / "trajectories.jsonl").exists() and (out / "results.csv").exists()


def test_a_key_on_the_command_line_stays_out_of_every_message(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/v1"  # nothing listens there
    typo = evaluate(["--policy", f"openai:AtomMem@{url}", "--out-dir", str(tmp_path / "a"),
                     "--policy-kwargs", json.dumps({"api_key": KEY, "temprature": 0})], {})
    assert typo.returncode == 1 and "temprature" in typo.stderr and '"api_key": "<redacted>"' in typo.stderr
    broken = evaluate(["--policy", f"openai:AtomMem@{url}", "--out-dir", str(tmp_path / "b"),
                       "--policy-kwargs", '{"api_key": "' + KEY + '" "temperature": 0}'], {})
    assert broken.returncode == 1 and "--policy-kwargs is not valid JSON" in broken.stderr
    unreachable = evaluate(["--policy", f"openai:AtomMem@{url}", "--out-dir", str(tmp_path / "c"),
                            "--policy-kwargs", json.dumps({"api_key": KEY, "max_retries": 0})], {})
    assert unreachable.returncode == 1 and "POST http://127.0.0.1:9/v1/chat/completions failed" in unreachable.stderr
    for run in (typo, broken, unreachable):
        assert KEY not in run.stdout + run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "c" / "trajectories.jsonl").exists()  # failed before its first episode: no file


def test_fidelity_report_and_repr_hold_no_key(tmp_path: Path, monkeypatch) -> None:
    args = FidelityArgs(policy="openai:AtomMem@http://localhost:8000/v1", out_dir=str(tmp_path),
                        policy_kwargs=json.dumps({"api_key": KEY, "temperature": 0}))
    write_tables([], tmp_path, args)
    report = (tmp_path / "fidelity.md").read_text()
    assert KEY not in report and '\\"api_key\\": \\"<redacted>\\"' in report
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    policy = OpenAIChatPolicy("http://localhost:8000/v1", "AtomMem")
    assert KEY not in repr(policy) and policy._api_key == KEY  # read from $OPENAI_API_KEY, shown nowhere
