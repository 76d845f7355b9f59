"""Policies that speak tools (issue #20 part 2): the OpenAI policy sends ``tools=`` and returns the
server's calls, local policies render the schemas with the chat template and parse the model's calls,
and the scripted baselines act in either format with the same results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import atommem_env  # noqa: F401  (registers the ids)
from agents import chat
from agents.base import Completion
from agents.chat import TOOLS_SECTION, chat_inputs, chat_prompt_ids, renders_tools, tool_response
from agents.diagnostics import OraclePolicy
from agents.openai_policy import ChatServiceError
from agents.scripted import HeuristicMemoryPolicy, NoMemoryPolicy, RandomPolicy
from agents.training.fidelity import replay
from agents.training.rollout import Trajectory, rollout
from atommem_env import as_messages
from atommem_env.tool_prompts import tool_schemas
from tests.agents.test_openai_policy import FakeServer, Reply, chat_reply, policy_for

TINY = "AtomMem-Synthetic-Tiny-v0"
SMOLLM2 = Path.home() / ".cache/atommem/models/smollm2-135m-instruct"
HERMES = ('I store it.\n<tool_call>\n{"name": "add_memory", "arguments": {"text": "Orin Vale directed it."}}\n'
          '</tool_call>\n<tool_call>\n{"name": "update_query", "arguments": {"keywords": "Orin Vale"}}\n</tool_call>')
CALLS = ({"name": "add_memory", "arguments": {"text": "Orin Vale directed it."}},
         {"name": "update_query", "arguments": {"keywords": "Orin Vale"}})


def tools_obs(**options: Any) -> dict[str, Any]:
    return gym.make(TINY, action_format="tools", **options).reset(seed=0)[0]


# ---------------------------------------------------------------------------------------- OpenAI
def server_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    """What a server's tool parser returns for the calls the body's last user message asks for."""
    user = body["messages"][-1]["content"]
    call = ("final_answer", {"answer": "Marrowfield"}) if "Question:" in user and "Article chunk" not in user \
        else ("add_memory", {"text": "a fact from this chunk"})
    return [{"id": "call_1", "type": "function", "function": {"name": call[0], "arguments": json.dumps(call[1])}}]


def tool_reply(body: dict[str, Any], n: int = 0) -> Reply:
    return chat_reply(None, choice={"message": {"role": "assistant", "content": None,
                                                "tool_calls": server_calls(body)}, "finish_reason": "tool_calls"})


def test_openai_sends_the_tools_and_returns_the_servers_calls():
    obs = tools_obs()
    with FakeServer(tool_reply) as server:
        (completion,) = policy_for(server).act([obs])
    body = server.requests[0][2]
    assert body["tools"] == tool_schemas("compact") and body["messages"] == as_messages(obs)
    assert "tool_choice" not in body  # "auto", the API's default with tools
    assert completion.text == "" and completion.tool_calls == (
        {"name": "add_memory", "arguments": {"text": "a fact from this chunk"}, "id": "call_1"},)
    assert completion.action == [completion.tool_calls[0]]


def test_openai_sends_no_tools_for_tags_and_keeps_token_ids_beside_calls():
    with FakeServer(lambda body, n: chat_reply("<add_memory>x</add_memory>")) as server:
        (tags,) = policy_for(server).act([gym.make(TINY).reset(seed=0)[0]])
    assert "tools" not in server.requests[0][2] and tags.tool_calls is None and tags.action == tags.text

    def reply(body: dict[str, Any], n: int) -> Reply:
        message = {"role": "assistant", "content": "Storing.", "tool_calls": server_calls(body)}
        return chat_reply(None, prompt_token_ids=[1, 2], choice={"message": message, "token_ids": [5, 6, 7]})

    with FakeServer(reply) as server:
        (completion,) = policy_for(server, extra_body={"return_token_ids": True}).act([tools_obs()])
    assert (completion.text, completion.prompt_ids, completion.response_ids) == ("Storing.", (1, 2), (5, 6, 7))
    assert completion.tool_calls[0]["name"] == "add_memory"


def test_openai_without_calls_leaves_the_text_to_the_env():
    """A server without a tool parser (or one that could not read a block) returns the blocks as content."""
    with FakeServer(lambda body, n: chat_reply(HERMES, choice={"message": {
            "role": "assistant", "content": HERMES, "tool_calls": []}})) as server:
        (completion,) = policy_for(server).act([tools_obs()])
    assert completion.tool_calls is None and completion.action == HERMES
    env = gym.make(TINY, action_format="tools")
    env.reset(seed=0)
    _, _, _, _, info = env.step(completion.action)
    assert [o["op"] for o in info["ops"]] == ["add_memory", "update_query"]


def test_openai_passes_undecodable_arguments_on_and_the_env_reports_them():
    def reply(body: dict[str, Any], n: int) -> Reply:
        calls = [{"id": "c", "type": "function", "function": {"name": "add_memory", "arguments": '{"text": "cut'}}]
        return chat_reply(None, choice={"message": {"role": "assistant", "content": None, "tool_calls": calls}})

    with FakeServer(reply) as server:
        (completion,) = policy_for(server).act([tools_obs()])
    assert completion.tool_calls == ({"name": "add_memory", "arguments": '{"text": "cut', "id": "c"},)
    env = gym.make(TINY, action_format="tools")
    env.reset(seed=0)
    obs, *_ = env.step(completion.action)
    assert obs["feedback"].startswith("- The arguments of add_memory are not valid JSON")


def test_openai_malformed_tool_calls_and_a_refusal_name_the_cause():
    with FakeServer(lambda body, n: chat_reply(None, choice={"message": {"content": None, "tool_calls": "x"}})) as s:
        with pytest.raises(ChatServiceError, match="tool_calls"):
            policy_for(s).act([tools_obs()])
    refusal = (400, {}, {"error": {"message": '"auto" tool choice requires --enable-auto-tool-choice'}})
    with FakeServer(lambda body, n: refusal) as server:
        with pytest.raises(ChatServiceError, match="--tool-call-parser"):
            policy_for(server).act([tools_obs()])


def test_openai_plays_a_whole_tools_episode():
    with FakeServer(tool_reply) as server:
        (traj,) = rollout(lambda: gym.make(TINY, action_format="tools"), policy_for(server), [0])
    assert traj.terminated and traj.result["answers"] == ["Marrowfield"]
    assert traj.tools == tool_schemas("compact") and all(t.tool_calls for t in traj.turns)
    assert len(server.requests) == len(traj.turns)
    again = Trajectory.from_json(json.loads(json.dumps(traj.to_json())))
    assert again == traj and again.turns[-1].action == traj.turns[-1].tool_calls


# ------------------------------------------------------------------------------- chat templates
# A template in the style of those that ship tool support (Qwen's): the tools, one JSON per line, in
# the system message. Written for this test; the real templates differ in wording.
TOOL_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }}"
    "{% if loop.first and tools %} tools : {% for t in tools %}{{ t | tojson }} {% endfor %}{% endif %}"
    " <eos> {% endfor %}{% if add_generation_prompt %}assistant :{% endif %}"
)


@pytest.fixture
def tiny_tokenizer(tiny_lm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_lm_path)


def test_a_template_that_renders_tools_gets_them(tiny_tokenizer):
    tiny_tokenizer.chat_template = TOOL_TEMPLATE
    obs = tools_obs()
    assert renders_tools(tiny_tokenizer)
    messages, tools = chat_inputs(tiny_tokenizer, obs)
    assert messages == as_messages(obs) and tools == list(obs["tools"])
    text = tiny_tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
    assert all(json.dumps(tool) in text for tool in obs["tools"])  # jinja's tojson writes what json.dumps does


def test_a_template_that_ignores_tools_gets_them_in_the_system_message(tiny_tokenizer):
    obs = tools_obs()
    assert not renders_tools(tiny_tokenizer)  # tests/support/tiny_lm.py's template, like SmolLM2's
    messages, tools = chat_inputs(tiny_tokenizer, obs)
    section = TOOLS_SECTION.format(tools="\n".join(json.dumps(t) for t in obs["tools"]))
    assert tools is None and messages[0]["content"] == obs["system"].rstrip() + section
    assert messages[1:] == as_messages(obs)[1:]
    assert chat_inputs(tiny_tokenizer, {"system": "s", "user": "u"}) == (as_messages({"system": "s", "user": "u"}),
                                                                         None)


@pytest.mark.skipif(not SMOLLM2.is_dir(), reason="the offline SmolLM2 folder is absent")
def test_smollm2s_template_ignores_tools_so_they_go_in_its_system_message():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(SMOLLM2)
    obs = tools_obs()
    assert not renders_tools(tokenizer)
    text = tokenizer.decode(chat_prompt_ids(tokenizer, obs, 10**6)[0])
    assert text.startswith("<|im_start|>system\n" + obs["system"].rstrip() + "\n\n# Tools\n")
    assert '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>' in text
    ids = tokenizer(HERMES, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert tool_response(tokenizer, ids) == (HERMES, CALLS)


def test_the_probe_is_asked_once_per_template(tiny_tokenizer, monkeypatch):
    monkeypatch.setattr(chat, "_RENDERS_TOOLS", {})
    calls = []
    original = tiny_tokenizer.apply_chat_template
    monkeypatch.setattr(tiny_tokenizer, "apply_chat_template", lambda *a, **k: calls.append(k) or original(*a, **k))
    for _ in range(3):
        renders_tools(tiny_tokenizer)
    assert len(calls) == 1


class FakeTokenizer:
    """decode() of fixed texts by id: what tool_response reads of a tokenizer."""

    eos_token_id, all_special_ids = 0, [0, 1]
    texts = {2: "<tool_call>", 3: '{"name": "add_memory", "arguments": {"text": "x"}}', 4: "</tool_call>", 5: "{oops"}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        assert not skip_special_tokens  # a tool-call token may be a special one
        return "".join(self.texts[i] for i in ids)


def test_tool_response_drops_the_end_of_turn_and_keeps_calls_only_when_all_parse():
    tokenizer = FakeTokenizer()
    assert tool_response(tokenizer, [2, 3, 4, 0]) == ("<tool_call>" + FakeTokenizer.texts[3] + "</tool_call>",
                                                      ({"name": "add_memory", "arguments": {"text": "x"}},))
    assert tool_response(tokenizer, [2, 3, 4, 2, 5, 4, 1, 0])[1] is None  # one block is not JSON
    assert tool_response(tokenizer, [3, 0])[1] == ({"name": "add_memory", "arguments": {"text": "x"}},)  # bare JSON
    assert tool_response(tokenizer, []) == ("", None)


# ----------------------------------------------------------------------------------- local models
def test_transformers_policy_renders_the_tools_and_parses_the_models_calls(tiny_lm_path, monkeypatch):
    from agents.hf_policy import TransformersPolicy

    policy = TransformersPolicy(tiny_lm_path, device="cpu", max_new_tokens=4, temperature=0)
    obs, tags_obs = tools_obs(), gym.make(TINY).reset(seed=0)[0]
    messages, _ = chat_inputs(policy.tokenizer, obs)
    expected = policy.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    assert policy.prompt_ids(obs) == list(expected if isinstance(expected, list) else expected["input_ids"])
    decoded: list[list[int]] = []
    monkeypatch.setattr(policy.tokenizer, "decode", lambda ids, skip_special_tokens: decoded.append(ids) or HERMES)
    tools, tags = policy.act([obs, tags_obs])
    assert (tools.text, tools.tool_calls) == (HERMES, CALLS) and tools.action == list(CALLS)
    assert tags.tool_calls is None and tags.action == HERMES  # the same text, for a tags env
    assert decoded[0] == [t for t in tools.response_ids if t != policy.tokenizer.eos_token_id][:len(decoded[0])]
    assert tools.prompt_ids == tuple(policy.prompt_ids(obs)) and len(tools.logprobs) == len(tools.response_ids)


def test_vllm_policy_renders_the_tools_and_parses_the_models_calls(tiny_lm_path, monkeypatch):
    from transformers import AutoTokenizer

    from agents.vllm_policy import VLLMPolicy
    from tests.support import fake_vllm

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    tokenizer.chat_template = TOOL_TEMPLATE
    fake_vllm.install(monkeypatch, tokenizer)
    policy = VLLMPolicy("m", max_tokens=16, max_model_len=4096)
    obs = tools_obs()
    (plain,) = policy.act([obs])
    prompts, _ = policy.llm.calls[0]
    assert prompts[0]["prompt_token_ids"] == chat_prompt_ids(tokenizer, obs, 4096 - 16)[0]
    assert plain.response_ids == tuple(fake_vllm.RESPONSE_IDS) and plain.tool_calls is None
    assert plain.text == tokenizer.decode(fake_vllm.RESPONSE_IDS[:-1], skip_special_tokens=False)  # no <eos>
    monkeypatch.setattr(tokenizer, "decode", lambda ids, skip_special_tokens: HERMES)
    (calls,) = policy.act([obs])
    assert calls.tool_calls == CALLS and calls.logprobs == (-0.5, -1.0, -1.5)


# -------------------------------------------------------------------------------------- scripted
def oracle() -> OraclePolicy:
    policy = OraclePolicy()
    policy.prepare(gym.make(TINY).unwrapped.source, range(4))
    return policy


SCRIPTED = [HeuristicMemoryPolicy, NoMemoryPolicy, oracle]


@pytest.mark.parametrize("make_policy", SCRIPTED, ids=["heuristic", "no-memory", "oracle"])
def test_scripted_baselines_score_the_same_in_both_formats(make_policy):
    seeds = [0, 1, 2, 3]
    tags = rollout(lambda: gym.make(TINY), make_policy(), seeds, env_id=TINY, indices=seeds)
    tools = rollout(lambda: gym.make(TINY, action_format="tools"), make_policy(), seeds, env_id=TINY, indices=seeds)
    assert [t.reward for t in tools] == [t.reward for t in tags]
    assert all(t.terminated for t in tools) or [t.truncated for t in tools] == [t.truncated for t in tags]
    for a, b in zip(tags, tools, strict=True):
        assert [t.ops for t in b.turns] == [t.ops for t in a.turns] and b.result == a.result
        assert all(t.tool_calls is not None for t in b.turns)  # scripted calls are structured
    assert sum(t.reward for t in tags) > 0 or make_policy is NoMemoryPolicy


def test_the_heuristic_scores_the_same_on_longer_episodes_in_both_formats():
    env_id, seeds = "AtomMem-Synthetic-v0", list(range(12))
    tags = rollout(lambda: gym.make(env_id), HeuristicMemoryPolicy(), seeds, env_id=env_id)
    tools = rollout(lambda: gym.make(env_id, action_format="tools"), HeuristicMemoryPolicy(), seeds, env_id=env_id)
    assert [t.reward for t in tools] == [t.reward for t in tags] and sum(t.reward for t in tags) >= 2
    assert [[t.ops for t in x.turns] for x in tools] == [[t.ops for t in x.turns] for x in tags]


def test_the_random_baseline_speaks_tools_too():
    (traj,) = rollout(lambda: gym.make(TINY, action_format="tools"), RandomPolicy(seed=1), [0])
    codes = {e["code"] for t in traj.turns for e in t.errors}
    assert codes & {"unknown_tool", "bad_arguments", "invalid_json"} and traj.turns
    assert any(t.tool_calls for t in traj.turns) and all(isinstance(t.action, (str, list)) for t in traj.turns)


def test_a_tools_trajectory_replays_through_a_fresh_env():
    recorded = rollout(lambda: gym.make(TINY, action_format="tools"), HeuristicMemoryPolicy(), [0, 1], env_id=TINY)
    replayed = replay(gym.make(TINY, action_format="tools"), recorded)
    assert [t.reward for t in replayed] == [t.reward for t in recorded]
    assert [[t.tool_calls for t in r.turns] for r in replayed] == [[t.tool_calls for t in r.turns] for r in recorded]


def test_completion_action_is_the_calls_or_the_text():
    assert Completion("text").action == "text"
    assert Completion("text", tool_calls=()).action == []
    assert Completion("", tool_calls=CALLS).action == list(CALLS)
