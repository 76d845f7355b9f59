"""The openai policy against a real OpenAI-compatible server: ``transformers serve`` with the offline SmolLM2.

The other tests of :mod:`agents.openai_policy` use a stub server; this one starts the real thing
(installable from PyPI: ``pip install -e ".[serve]"``) and checks what a user relies on: the request
carries the env's exact prompt (the server counts the same prompt tokens as our own chat template, and
its greedy answer is the local model's), ``evaluate.py --policy openai:MODEL@URL`` plays whole episodes
(one request per turn, the results row written), and asking for log-probabilities, which this server
does not implement, fails with a message that says so.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason='transformers serve needs the serve extra: pip install -e ".[serve]"')
pytest.importorskip("uvicorn", reason='transformers serve needs the serve extra: pip install -e ".[serve]"')
pytest.importorskip("gguf", reason="the offline SmolLM2 needs the llm extra")

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``transformers serve`` of the converted SmolLM2 on a free port; yields (base URL, model, log file)."""
    from agents.models import resolve_model
    from atommem_env.errors import DependencyError

    try:
        model = resolve_model("smollm2")
    except DependencyError as error:
        pytest.skip(str(error))
    cli = Path(sys.executable).with_name("transformers")
    if not cli.exists():
        pytest.skip("the transformers CLI is not installed beside this Python")
    port, log = _free_port(), tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(cli), "serve", model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
             "--dtype", "float32", "--log-level", "info"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield f"{url}/v1", model, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def _first_observation() -> dict:
    import gymnasium as gym

    import atommem_env  # noqa: F401

    obs, _ = gym.make("AtomMem-Synthetic-Tiny-v0").reset(seed=0)
    return obs


def test_the_request_is_the_envs_prompt_and_the_answer_the_local_models(server, one_torch_thread):
    from agents.openai_policy import OpenAIChatPolicy
    from agents.registry import make_policy

    base_url, model, _ = server
    obs = _first_observation()
    remote = OpenAIChatPolicy(base_url, model, temperature=0.0, max_tokens=24)
    local = make_policy("smollm2", temperature=0, max_new_tokens=24).act([obs])[0]
    # The server's own count of the request's tokens: the env's messages under the model's chat template.
    body = json.dumps(remote.request_body(obs)).encode()
    request = urllib.request.Request(remote.url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as reply:
        usage = json.load(reply)["usage"]
    assert usage["prompt_tokens"] == len(local.prompt_ids)
    answer = remote.act([obs])[0]
    assert answer.text == local.text  # greedy, float32: the same model gives the same tokens
    assert usage["completion_tokens"] == len(local.response_ids)
    assert answer.response_ids is None and answer.logprobs is None  # this server reports neither


def test_evaluate_plays_whole_episodes_through_the_server(server, tmp_path):
    base_url, model, log = server
    before = log.read_text().count("POST /v1/chat/completions")
    out = tmp_path / "run"
    command = [sys.executable, "experiments/evaluate.py", "--env-ids", "AtomMem-Synthetic-Tiny-v0",
               "--episodes", "2", "--policy", f"openai:{model}@{base_url}",
               "--policy-kwargs", json.dumps({"temperature": 0.0, "max_tokens": 16, "concurrency": 2}),
               "--out-dir", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(line["turns"] for line in lines)
    turns = sum(len(line["turns"]) for line in lines)
    assert all(turn["response"] for line in lines for turn in line["turns"])
    time.sleep(1)  # the server's access log line follows its reply
    assert log.read_text().count("POST /v1/chat/completions") - before == turns  # one request per turn
    (row,) = list(csv.DictReader((out / "results.csv").open()))
    assert row["policy"] == f"openai:{model}" and int(row["episodes"]) == 2
    assert 0.0 <= float(row["em"]) <= 1.0


def test_asking_this_server_for_logprobs_fails_with_a_message_that_says_so(server):
    from agents.openai_policy import ChatServiceError, OpenAIChatPolicy

    base_url, model, _ = server
    policy = OpenAIChatPolicy(base_url, model, temperature=0.0, max_tokens=4, logprobs=True, max_retries=0)
    with pytest.raises(ChatServiceError, match=re.escape(base_url)) as caught:
        policy.act([_first_observation()])
    assert "logprobs" in str(caught.value)
