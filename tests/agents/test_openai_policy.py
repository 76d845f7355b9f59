"""OpenAIChatPolicy against a fake OpenAI-compatible server running in-process (no network)."""

from __future__ import annotations

import pickle
import socket
import time
from typing import Any

import gymnasium as gym
import pytest

from agents import Policy
from agents.openai_policy import ChatServiceError, OpenAIChatPolicy
from agents.training.rollout import rollout
from atommem_env import AtomMemError, ConfigError, as_messages
from tests.support.fake_openai import FakeServer, Reply, agent_reply, chat_reply


def policy_for(server: FakeServer, **kwargs: Any) -> OpenAIChatPolicy:
    kwargs = {"timeout": 5.0, "backoff": 0.0, **kwargs}
    return OpenAIChatPolicy(server.base_url, "AtomMem", **kwargs)


def obs(user: str) -> dict[str, Any]:
    return {"system": "You manage memory.", "user": user}


def test_request_body_headers_and_name():
    with FakeServer(lambda body, n: chat_reply("<add_memory>x</add_memory>")) as server:
        policy = policy_for(server, api_key="sk-secret", max_tokens=64, extra_body={"seed": 3})
        (completion,) = policy.act([obs("Read this.")])
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-secret"
    assert body == {
        "model": "AtomMem",
        "messages": as_messages(obs("Read this.")),
        "temperature": 1.0,
        "top_p": 0.99,
        "max_tokens": 64,
        "seed": 3,
    }
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert completion.text == "<add_memory>x</add_memory>"
    assert (completion.prompt_ids, completion.response_ids, completion.logprobs) == (None, None, None)
    assert policy.name == "openai:AtomMem" and isinstance(policy, Policy)


def test_order_is_kept_when_later_requests_finish_first():
    def respond(body: dict[str, Any], n: int) -> Reply:
        index = int(body["messages"][-1]["content"])
        time.sleep(0.05 * (5 - index))  # the first observation is answered last
        return chat_reply(f"answer {index}")

    with FakeServer(respond) as server:
        completions = policy_for(server, concurrency=6).act([obs(str(i)) for i in range(6)])
    assert [c.text for c in completions] == [f"answer {i}" for i in range(6)]
    assert policy_for(server).act([]) == []


def test_a_full_synthetic_episode_terminates():
    with FakeServer(lambda body, n: agent_reply(body)) as server:
        (traj,) = rollout(lambda: gym.make("AtomMem-Synthetic-v0"), policy_for(server), [0])
    assert traj.terminated and not traj.truncated
    assert any("add_memory" in t.response for t in traj.turns)
    assert traj.turns[-1].response.startswith("<final_answer>")
    assert len(server.requests) == len(traj.turns)


def test_a_500_is_retried_and_retry_after_is_respected():
    def respond(body: dict[str, Any], n: int) -> Reply:
        if n == 1:
            return 500, {}, {"error": {"message": "engine hiccup"}}
        if n == 2:
            return 429, {"Retry-After": "0.2"}, {"error": {"message": "slow down"}}
        return chat_reply("ok")

    with FakeServer(respond) as server:
        start = time.monotonic()
        (completion,) = policy_for(server, max_retries=2).act([obs("u")])
    assert completion.text == "ok" and len(server.requests) == 3
    assert time.monotonic() - start >= 0.2  # waited for Retry-After although backoff=0


def test_retries_that_run_out_raise_with_the_last_reason():
    with FakeServer(lambda body, n: (503, {}, {"error": {"message": "overloaded"}})) as server:
        with pytest.raises(ChatServiceError, match="after 2 attempt.*503 overloaded"):
            policy_for(server, max_retries=1).act([obs("u")])
    assert len(server.requests) == 2


def test_a_400_fails_at_once_with_the_server_message():
    message = "This model's maximum context length is 16384 tokens"
    with FakeServer(lambda body, n: (400, {}, {"error": {"message": message}})) as server:
        with pytest.raises(ChatServiceError) as caught:
            policy_for(server, max_retries=3).act([obs("u")])
    assert len(server.requests) == 1
    assert server.base_url + "/chat/completions" in str(caught.value)
    assert "HTTP 400" in str(caught.value) and message in str(caught.value)
    assert isinstance(caught.value, AtomMemError)


def test_a_dead_port_names_the_url():
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = OpenAIChatPolicy(f"http://127.0.0.1:{port}/v1", "m", timeout=0.5, max_retries=1, backoff=0.0)
    with pytest.raises(ChatServiceError, match=f"POST http://127.0.0.1:{port}/v1/chat/completions failed after 2"):
        policy.act([obs("u")])


def test_a_timeout_is_retried_then_reported():
    def respond(body: dict[str, Any], n: int) -> Reply:
        time.sleep(0.5)
        return chat_reply("too late")

    with FakeServer(respond) as server:
        with pytest.raises(ChatServiceError, match="timed out"):
            policy_for(server, timeout=0.1, max_retries=1).act([obs("u")])
    assert len(server.requests) == 2


def test_logprobs_and_token_ids_from_tokens():
    content = [{"token": "token_id:11", "logprob": -0.5}, {"token": "token_id:12", "logprob": -1.25}]
    with FakeServer(lambda body, n: chat_reply("ab", choice={"logprobs": {"content": content}})) as server:
        (completion,) = policy_for(server, logprobs=True).act([obs("u")])
    assert server.requests[0][2]["logprobs"] is True
    assert completion.logprobs == (-0.5, -1.25) and completion.response_ids == (11, 12)
    assert completion.prompt_ids is None


def test_logprobs_without_token_ids_and_explicit_token_ids():
    content = [{"token": "a", "logprob": -0.1}, {"token": "b", "logprob": -0.2}]
    with FakeServer(lambda body, n: chat_reply("ab", choice={"logprobs": {"content": content}})) as server:
        (plain,) = policy_for(server, logprobs=True).act([obs("u")])
    assert plain.logprobs == (-0.1, -0.2) and plain.response_ids is None

    reply = chat_reply("ab", prompt_token_ids=[1, 2, 3], choice={"token_ids": [7, 8]})
    with FakeServer(lambda body, n: reply) as server:
        (ids,) = policy_for(server, extra_body={"return_token_ids": True}).act([obs("u")])
    assert (ids.prompt_ids, ids.response_ids, ids.logprobs) == ((1, 2, 3), (7, 8), None)


def test_missing_logprobs_or_a_malformed_reply_is_an_error():
    with FakeServer(lambda body, n: chat_reply("ab")) as server:
        with pytest.raises(ChatServiceError, match="logprobs"):
            policy_for(server, logprobs=True).act([obs("u")])
    with FakeServer(lambda body, n: (200, {}, {"unexpected": True})) as server:
        with pytest.raises(ChatServiceError, match="not an OpenAI chat completion"):
            policy_for(server).act([obs("u")])
    with FakeServer(lambda body, n: chat_reply(None)) as server:
        assert policy_for(server).act([obs("u")])[0].text == ""


def test_pickles_and_hides_the_api_key():
    with FakeServer(lambda body, n: chat_reply("ok")) as server:
        policy = policy_for(server, api_key="sk-secret")
        clone = pickle.loads(pickle.dumps(policy))
        assert clone.act([obs("u")])[0].text == "ok"
    assert "sk-secret" not in repr(policy) and "model='AtomMem'" in repr(policy)


@pytest.mark.parametrize(
    "kwargs",
    [{"base_url": "localhost:8000/v1"}, {"model": ""}, {"concurrency": 0}, {"timeout": 0}, {"extra_body": [1]}],
)
def test_bad_arguments_are_config_errors(kwargs):
    args = {"base_url": "http://localhost:8000/v1", "model": "m", **kwargs}
    with pytest.raises(ConfigError):
        OpenAIChatPolicy(**args)
