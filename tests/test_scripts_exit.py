"""Every entry point ends with a message, not a traceback (``agents/training/cli.py``, ``exit_on_errors``).

A project error becomes its message and exit status 1; Ctrl-C becomes exit status 130 and, for a run
that can be continued, the exact command that continues it; a run that fails before its first episode
leaves no empty ``trajectories.jsonl``.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.test_scripts_help import ENTRY_POINTS, ROOT

SCRIPTS = sorted({script for script, _ in ENTRY_POINTS})

# Runs in the child: the first thing every script does in main() is parse its flags; make that raise.
RUNNER = r'''
import argparse, contextlib, io, json, runpy, sys
from atommem_env.errors import DataError

raised = {"KeyboardInterrupt": KeyboardInterrupt, "DataError": lambda: DataError("no such file: data.json")}
results = []
for script in json.loads(sys.argv[1]):
    for name, error in raised.items():
        def parse_args(self, *args, **kwargs):
            raise error()
        argparse.ArgumentParser.parse_args = parse_args
        sys.argv, err = [script], io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                runpy.run_path(script, run_name="__main__")
            code = None
        except SystemExit as exit_:
            code = exit_.code
        results.append({"script": script, "raised": name, "code": code, "stderr": err.getvalue()})
print(json.dumps(results))
'''


def test_every_entry_point_turns_errors_and_ctrl_c_into_an_exit_status() -> None:
    child = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(SCRIPTS)], capture_output=True, text=True,
                           cwd=ROOT, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    results = json.loads(child.stdout.splitlines()[-1])
    assert {r["script"] for r in results} == set(SCRIPTS) and len(SCRIPTS) >= 20
    for r in results:
        if r["raised"] == "KeyboardInterrupt":
            assert r["code"] == 130 and r["stderr"].strip() == "Interrupted.", r
        else:
            assert r["code"] == "no such file: data.json", r  # SystemExit(message): printed, exit status 1


def run_evaluate(*flags: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "experiments/evaluate.py", *flags], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, **options)


def test_a_data_error_is_one_line_and_leaves_no_trajectories(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = run_evaluate("--env-ids", "AtomMem-HotpotQA-200-v0", "--data-dir", str(tmp_path / "missing"),
                        "--out-dir", str(out), "--no-plots")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "No HotpotQA dev file" in done.stderr
    assert "Traceback" not in done.stderr and not (out / "trajectories.jsonl").exists()


SLOW_POLICY = '''
import os, time
from agents.scripted import HeuristicMemoryPolicy

class Slow(HeuristicMemoryPolicy):
    def act(self, observations):
        time.sleep(float(os.environ.get("SLOW_ACT_S", "0")))  # a run long enough to interrupt
        return super().act(observations)
'''


def test_ctrl_c_exits_130_with_the_command_that_resumes_the_run(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW_POLICY, encoding="utf-8")
    out = tmp_path / "run"
    policy = f"{tmp_path / 'slow.py'}:Slow"
    flags = ["--policy", policy, "--out-dir", str(out), "--episodes", "8", "--batch-size", "1", "--no-plots"]
    # SIGINT restored to its default in the child: a shell that starts jobs in the background (`cmd &`, as
    # some CI runners and nohup'd runs do) leaves it ignored, and then Python installs no KeyboardInterrupt.
    child = subprocess.Popen([sys.executable, "experiments/evaluate.py", *flags], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "SLOW_ACT_S": "0.2"},
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    trajectories = out / "trajectories.jsonl"
    deadline = time.monotonic() + 120
    while not (trajectories.exists() and trajectories.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, stderr[-2000:]
    expected = shlex.join(["python", "experiments/evaluate.py", "--policy", policy, "--episodes", "8",
                           "--batch-size", "1", "--no-plots", "--out-dir", str(out), "--resume"])
    assert stderr.endswith(f"Interrupted. Continue it with:\n  {expected}\n") and "Traceback" not in stderr
    kept = trajectories.read_text().count("\n")
    assert 1 <= kept < 8

    resumed = subprocess.run([sys.executable, *shlex.split(expected)[1:]], capture_output=True, text=True,
                             cwd=ROOT, timeout=300, env={**os.environ, "SLOW_ACT_S": "0"})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    lines = [json.loads(line) for line in trajectories.read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == list(range(8))  # the kept episodes were not run again
    assert "| 8 |" in (out / "results.md").read_text()
