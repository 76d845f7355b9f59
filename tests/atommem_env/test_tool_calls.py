"""action_format="tools": the schemas, both action forms, each error with its feedback, and the
equivalence with tags (a tag action and its tool-call form execute identically)."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import atommem_env  # noqa: F401  (registers the ids)
from atommem_env import prompts
from atommem_env.actions import (
    ADD_MEMORY,
    DELETE_MEMORY,
    FINAL_ANSWER,
    MODIFY_MEMORY,
    OP_KINDS,
    UPDATE_MEMORY,
    UPDATE_QUERY,
    Op,
    parse_action,
    render_ops,
)
from atommem_env.env import MemoryQAEnv
from atommem_env.errors import ConfigError, RenderError
from atommem_env.protocol import ATOMMEM, REFERENCE, with_rules
from atommem_env.spaces import ToolAction
from atommem_env.tool_calls import (
    TOOL_ARGUMENTS,
    parse_tool_calls,
    render_tool_calls,
    tags_to_tool_calls,
    tool_call,
    tool_calls,
    tool_calls_to_tags,
)
from atommem_env.tool_prompts import tool_schemas
from tests.conftest import ToySource

TINY = "AtomMem-Synthetic-Tiny-v0"


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


def codes(action):
    return [e.code for e in parse_tool_calls(action).errors]


# --------------------------------------------------------------------------------------- schemas
@pytest.mark.parametrize("style", ["paper", "compact"])
def test_the_six_tools_have_openai_schemas(style):
    schemas = tool_schemas(style)
    assert [s["function"]["name"] for s in schemas] == list(OP_KINDS) == list(TOOL_ARGUMENTS)
    for schema in schemas:
        assert schema["type"] == "function" and schema["function"]["description"]
        parameters = schema["function"]["parameters"]
        names = [a for a, _ in TOOL_ARGUMENTS[schema["function"]["name"]]]
        assert parameters["type"] == "object" and parameters["additionalProperties"] is False
        assert list(parameters["properties"]) == parameters["required"] == names
        for name, kind in TOOL_ARGUMENTS[schema["function"]["name"]]:
            assert parameters["properties"][name]["type"] == kind and parameters["properties"][name]["description"]
    assert json.loads(json.dumps(schemas)) == schemas
    modify = schemas[OP_KINDS.index(MODIFY_MEMORY)]["function"]["parameters"]
    assert modify["properties"]["rank"]["minimum"] == 1


def test_styles_differ_in_descriptions_only():
    paper, compact = tool_schemas("paper"), tool_schemas("compact")
    assert [s["function"]["parameters"] for s in paper] == [s["function"]["parameters"] for s in compact]
    assert paper[2]["function"]["description"].startswith("creates a new entry in the memory")  # the paper's words


def test_the_observation_carries_the_schemas_only_in_tools_format():
    tools_env = gym.make(TINY, action_format="tools")
    obs, _ = tools_env.reset(seed=0)
    assert obs["tools"] == tuple(tool_schemas("compact")) and obs in tools_env.observation_space
    obs["tools"][0]["function"]["name"] = "mutated"  # a policy's change does not reach the env
    assert tools_env.reset(seed=0)[0]["tools"][0]["function"]["name"] == UPDATE_MEMORY
    for env in (gym.make(TINY), gym.make("AtomMem-MemAgent-Synthetic-v0")):
        obs, _ = env.reset(seed=0)
        assert obs["tools"] == () and obs in env.observation_space
    assert isinstance(tools_env.action_space, ToolAction)
    assert tools_env.observation_space == gym.make(TINY).observation_space  # one space for every protocol


def test_check_env_passes_without_warnings_in_tools_format():
    env = gym.make("AtomMem-Synthetic-v0", action_format="tools")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


def test_sampled_actions_are_in_the_space_and_run():
    env = gym.make(TINY, action_format="tools")
    env.action_space.seed(3)
    env.reset(seed=3)
    kinds = set()
    for _ in range(150):
        action = env.action_space.sample()
        assert action in env.action_space
        kinds.add(type(action))
        *_, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    assert kinds == {str, list}


# --------------------------------------------------------------------------------------- parsing
ALL_SIX = [
    call(UPDATE_MEMORY, text="notes"), call(UPDATE_QUERY, keywords="a; b"), call(ADD_MEMORY, text=" fact "),
    call(MODIFY_MEMORY, rank=2, text="new"), call(DELETE_MEMORY, rank=1), call(FINAL_ANSWER, answer="Paris"),
]
ALL_SIX_OPS = (
    Op(UPDATE_MEMORY, "notes"), Op(UPDATE_QUERY, "a; b"), Op(ADD_MEMORY, "fact"), Op(MODIFY_MEMORY, "new", 2),
    Op(DELETE_MEMORY, "", 1), Op(FINAL_ANSWER, "Paris"),
)


def test_a_list_of_calls_runs_in_order():
    parsed = parse_tool_calls(ALL_SIX)
    assert parsed.ops == ALL_SIX_OPS and not parsed.errors


def test_the_openai_shape_with_json_text_arguments():
    openai = [{"id": f"call_{i}", "type": "function",
               "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}} for i, c in enumerate(ALL_SIX)]
    assert parse_tool_calls(openai).ops == ALL_SIX_OPS


def test_hermes_text_blocks():
    text = "I will store it.\n" + "\n".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in ALL_SIX)
    assert parse_tool_calls(text).ops == ALL_SIX_OPS


def test_smollm2_lists_llama_parameters_and_bare_json():
    smol = "<tool_call>[" + ", ".join(json.dumps(c) for c in ALL_SIX[:2]) + "]</tool_call>"
    assert parse_tool_calls(smol).ops == ALL_SIX_OPS[:2]
    llama = '<|python_tag|>{"name": "add_memory", "parameters": {"text": "fact"}}; ' + json.dumps(ALL_SIX[4])
    assert parse_tool_calls(llama).ops == (Op(ADD_MEMORY, "fact"), Op(DELETE_MEMORY, "", 1))
    assert parse_tool_calls(json.dumps(ALL_SIX)).ops == ALL_SIX_OPS


def test_reasoning_is_skipped_and_a_last_open_block_runs_to_the_end():
    text = ('<think>maybe <tool_call>{"name": "add_memory", "arguments": {"text": "draft"}}</tool_call></think>'
            '<tool_call>{"name": "add_memory", "arguments": {"text": "final"}}')
    assert parse_tool_calls(text).ops == (Op(ADD_MEMORY, "final"),)
    lone_close = 'draft</think><tool_call>{"name": "add_memory", "arguments": {"text": "yes"}}</tool_call>'
    assert parse_tool_calls(lone_close).ops == (Op(ADD_MEMORY, "yes"),)
    cut = '<tool_call>{"name": "add_memory", "arguments": {"text": "kept"}}</tool_call><think>still'
    parsed = parse_tool_calls(cut)
    assert parsed.ops == (Op(ADD_MEMORY, "kept"),) and [e.code for e in parsed.errors] == ["unclosed_tag"]


def test_answers_are_unboxed_and_texts_stripped_as_tags_are():
    assert parse_tool_calls([call(FINAL_ANSWER, answer="It is \\boxed{Paris}")]).ops == (Op(FINAL_ANSWER, "Paris"),)
    assert parse_tool_calls([call(UPDATE_MEMORY, text="  ")]).ops == (Op(UPDATE_MEMORY, ""),)  # a clear
    assert parse_tool_calls([call(FINAL_ANSWER, answer=" x ")]).ops[0].raw == " x "


@pytest.mark.parametrize(
    "action, code",
    [
        ("just prose", "no_action"),
        ([], "no_action"),
        ("<tool_call>{not json}</tool_call>", "invalid_json"),
        ('<tool_call>{"name": "add_memory", "arguments": {"text": "cut', "invalid_json"),
        ("[1, 2", "invalid_json"),
        ([{"name": ADD_MEMORY, "arguments": '{"text": '}], "invalid_json"),
        ([call("forget_everything")], "unknown_tool"),
        ([{"arguments": {"text": "x"}}], "unknown_tool"),
        ("<tool_call>[3]</tool_call>", "unknown_tool"),
        ([call(ADD_MEMORY)], "bad_arguments"),
        ([call(ADD_MEMORY, text="x", reason="why")], "bad_arguments"),
        ([call(ADD_MEMORY, text=3)], "bad_arguments"),
        ([{"name": ADD_MEMORY, "arguments": '["x"]'}], "bad_arguments"),
        ([call(DELETE_MEMORY, rank="2")], "bad_arguments"),
        ([call(DELETE_MEMORY, rank=0)], "bad_arguments"),
        ([call(DELETE_MEMORY, rank=True)], "bad_arguments"),
        ([call(ADD_MEMORY, text="   ")], "empty_content"),
        ([call(UPDATE_QUERY, keywords="")], "empty_content"),
        ([call(MODIFY_MEMORY, rank=1, text="")], "empty_content"),
        ([call(FINAL_ANSWER, answer="\\boxed{}")], "empty_content"),
    ],
)
def test_each_malformed_call_gets_its_code(action, code):
    assert codes(action) == [code]


def test_parse_never_raises_and_good_calls_run_beside_bad_ones():
    parsed = parse_tool_calls([call(ADD_MEMORY, text="ok"), call("nope"), 7, call(DELETE_MEMORY, rank=1)])
    assert parsed.ops == (Op(ADD_MEMORY, "ok"), Op(DELETE_MEMORY, "", 1))
    assert [e.code for e in parsed.errors] == ["unknown_tool", "unknown_tool"]
    assert codes([{"name": ADD_MEMORY, "arguments": {"text": object()}}]) == ["bad_arguments"]


@settings(max_examples=200)
@given(st.text() | st.lists(st.sampled_from(["<tool_call>", "</tool_call>", "{", "}", "[", "]", '"name"', ":",
                                             '"add_memory"', '"arguments"', ",", "<think>", "</think>", " "])
                            ).map("".join))
def test_parse_never_raises_on_arbitrary_text(text):
    parsed = parse_tool_calls(text)
    assert parsed.ops or parsed.errors


# ------------------------------------------------------------------------------ errors in the env
def test_each_error_is_coded_and_fed_back_in_the_next_observation():
    env = gym.make(TINY, action_format="tools")
    env.reset(seed=0)
    action = [call(ADD_MEMORY, text="a fact"), call("forget"), call(DELETE_MEMORY, rank="one"),
              {"name": UPDATE_QUERY, "arguments": "{oops"}, call(ADD_MEMORY, text=" ")]
    obs, _, _, _, info = env.step(action)
    assert [e["code"] for e in info["errors"]] == ["unknown_tool", "bad_arguments", "invalid_json", "empty_content"]
    assert obs["feedback"] == "\n".join(f"- {e['message']}" for e in info["errors"])
    assert info["num_invalid"] == 4 and info["op_counts"]["create"] == 1 and info["advanced"]
    assert "Unknown tool ('forget')" in obs["feedback"] and "delete_memory(rank: integer)" in obs["feedback"]
    obs, _, _, _, info = env.step("no calls at all")
    assert obs["feedback"] == "- The response contained no tool call."


def test_env_errors_name_the_tool_not_a_tag():
    env = gym.make(TINY, action_format="tools", enable_delete=False)
    env.reset(seed=0)
    obs, *_ = env.step([call(ADD_MEMORY, text="a"), call(MODIFY_MEMORY, rank=7, text="b"), call(DELETE_MEMORY, rank=1)])
    assert obs["feedback"] == ("- modify_memory: Memory 7 is not in the current list (it shows no memories).\n"
                               "- delete_memory is disabled in this setting.")


def test_a_list_beyond_the_response_budget_loses_its_last_calls():
    env = gym.make(TINY, action_format="tools", response_tokens=45)  # each call is 20 regex tokens
    env.reset(seed=0)
    _, _, _, _, info = env.step([call(ADD_MEMORY, text=f"fact number {i}") for i in range(5)])
    assert info["op_counts"]["create"] == 2
    (error,) = info["errors"]
    assert error["code"] == "response_truncated" and "the last 3 were dropped" in error["message"]


def test_actions_of_the_wrong_type_are_type_errors():
    tags, tools = gym.make(TINY), gym.make(TINY, action_format="tools")
    tags.reset(seed=0)
    tools.reset(seed=0)
    with pytest.raises(TypeError, match="action_format='tools'"):
        tags.step([call(ADD_MEMORY, text="x")])
    with pytest.raises(TypeError, match="list of tool-call dicts"):
        tools.step([["add_memory", "x"]])
    with pytest.raises(TypeError, match="list of tool-call dicts"):
        tools.step(42)


# ---------------------------------------------------------------------------------------- config
def test_memagent_ids_refuse_tools_with_the_reason():
    with pytest.raises(ConfigError, match="MemAgent protocol has no tools"):
        gym.make("AtomMem-MemAgent-Synthetic-v0", action_format="tools")
    from atommem_env.memagent import MemAgentEnv

    with pytest.raises(ConfigError, match="MemAgent protocol has no tools"):
        MemAgentEnv(ToySource(), action_format="tools")


def test_tools_refuse_the_reference_protocol_but_keep_our_text_rules_elsewhere():
    with pytest.raises(ConfigError, match="require_box.*tool calls do not have"):
        gym.make(TINY, action_format="tools", protocol="reference")
    with pytest.raises(ConfigError, match="reference_ranks"):
        MemoryQAEnv(ToySource(), action_format="tools", protocol=with_rules(ATOMMEM, REFERENCE, ["reference_ranks"]))
    env = MemoryQAEnv(ToySource(), action_format="tools", protocol=with_rules(ATOMMEM, REFERENCE, ["gold_matching"]))
    assert env.config.action_format == "tools"
    with pytest.raises(ConfigError, match="action_format='xml'"):
        gym.make(TINY, action_format="xml")


# --------------------------------------------------------------------------------------- prompts
@pytest.mark.parametrize("style", ["paper", "compact"])
def test_tool_prompts_name_tools_and_never_tags(style):
    tags_env = MemoryQAEnv(ToySource(), prompt_style=style, chunk_tokens=60, chunk_overlap=5)
    tools_env = MemoryQAEnv(ToySource(), prompt_style=style, chunk_tokens=60, chunk_overlap=5, action_format="tools")
    tags_obs, tools_obs = tags_env.reset(seed=2)[0], tools_env.reset(seed=2)[0]
    assert tools_obs["user"] == tags_obs["user"]  # reading turns are the paper's, unchanged
    assert tools_obs["system"] != tags_obs["system"] and "update_memory" in tools_obs["system"]
    view = prompts.PromptView("memo", "q", ["an entry"], 0, 3)
    answering = prompts.render_answering("Who?", view, style, "tools")
    assert "final_answer" in answering and "Memory 1: an entry" in answering and "Who?" in answering
    for text in (tools_obs["system"], answering):
        assert not any(f"<{kind}>" in text for kind in OP_KINDS) and "\\boxed" not in text
    assert prompts.render_answering("Who?", view, style) == prompts.render_answering("Who?", view, style, "tags")


def test_disabled_notes_speak_of_tools():
    env = MemoryQAEnv(ToySource(), action_format="tools", enable_update=False, show_scratchpad=False)
    assert env.reset(seed=0)[0]["system"].endswith(
        "\nIn this setting the short-term memory is disabled: update_memory has no effect.\n"
        "In this setting modify_memory is disabled.\n")


# ------------------------------------------------------------------------------------ conversion
TEXT = st.text(st.sampled_from("abc XYZ.;:-'é\n"), min_size=1, max_size=12).map(str.strip).filter(bool)
OPS = st.one_of(
    TEXT.map(lambda t: Op(UPDATE_MEMORY, t)),
    TEXT.map(lambda t: Op(UPDATE_QUERY, t)),
    TEXT.map(lambda t: Op(ADD_MEMORY, t)),
    st.tuples(st.integers(1, 5), TEXT).map(lambda r: Op(MODIFY_MEMORY, r[1], r[0])),
    st.integers(1, 5).map(lambda r: Op(DELETE_MEMORY, "", r)),
    TEXT.map(lambda t: Op(FINAL_ANSWER, t)),
)


@given(st.lists(OPS, max_size=6))
def test_calls_and_hermes_text_parse_back_to_their_ops(ops):
    assert parse_tool_calls(tool_calls(ops)).ops == tuple(ops)
    assert parse_tool_calls(render_tool_calls(ops)).ops == tuple(ops)
    assert tool_calls_to_tags(tool_calls(ops)) == render_ops(ops)  # "" for no op: both are no_action
    assert tags_to_tool_calls(render_ops(ops)) == tool_calls(ops)


def test_a_text_holding_the_closing_tag_stays_in_its_block():
    ops = [Op(ADD_MEMORY, 'a </tool_call> "b" <tool_call>'), Op(DELETE_MEMORY, "", 2)]
    assert parse_tool_calls(render_tool_calls(ops)).ops == tuple(ops)


def test_what_has_no_other_form_is_refused():
    for op in (Op(ADD_MEMORY, " padded"), Op(ADD_MEMORY, ""), Op(DELETE_MEMORY, "", 0), Op("shout", "x"),
               Op(FINAL_ANSWER, "\\boxed{x}"), Op(DELETE_MEMORY, "x", 1), Op(ADD_MEMORY, "x", 1)):
        with pytest.raises(RenderError):
            tool_call(op)
    with pytest.raises(RenderError, match="missing_memory_prefix"):
        tags_to_tool_calls("<delete_memory>the second</delete_memory>")
    with pytest.raises(RenderError, match="unknown_tool"):
        tool_calls_to_tags([call("shout")])
    with pytest.raises(RenderError):  # a tool text that a tag cannot hold
        tool_calls_to_tags([call(ADD_MEMORY, text="<add_memory>")])


# Responses: a list of ops, each valid on its own (the env decides whether it runs now).
STEPS = st.lists(st.lists(OPS, min_size=0, max_size=4), min_size=4, max_size=30)
OPTIONS = st.fixed_dictionaries({
    "chunk_tokens": st.integers(100, 400),
    "advance": st.sampled_from(["on_write", "always"]),
    "chunk_overlap": st.just(5),
    "top_k": st.sampled_from([3, 6]),
    "enable_delete": st.booleans(),
    "show_scratchpad": st.booleans(),
    "capacity": st.sampled_from([None, 3]),
})
# How the feedback of tags reads for tools: an op is named by its tool, and no tag is no call.
_LABELS = [(f"<{kind}>", kind) for kind in OP_KINDS] + [("no action tag", "no tool call")]


def _untagged(text: str) -> str:
    for tag, name in _LABELS:
        text = text.replace(tag, name)
    return text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options=OPTIONS, seed=st.integers(0, 2**16), index=st.integers(0, 5), steps=STEPS)
def test_a_tag_action_and_its_tool_calls_execute_identically(options, seed, index, steps):
    """The same ops as tags, as a list of calls and as Hermes text: same info, reward, end and memory;
    the feedback differs only in naming an op as its tag or as its tool."""
    envs = [MemoryQAEnv(ToySource(), **options), MemoryQAEnv(ToySource(), action_format="tools", **options),
            MemoryQAEnv(ToySource(), action_format="tools", **options)]
    first = [env.reset(seed=seed, options={"index": index})[0] for env in envs]
    assert first[1]["user"] == first[2]["user"] == first[0]["user"]
    for ops in steps:
        actions = [render_ops(ops), tool_calls(ops), render_tool_calls(ops)]
        results = [env.step(action) for env, action in zip(envs, actions, strict=True)]
        (tags_obs, *tags_rest, tags_info), *tools = results
        for obs, *rest, info in tools:
            assert rest == tags_rest  # reward, terminated, truncated
            assert json.loads(_untagged(json.dumps(tags_info))) == info
            assert obs["feedback"] == _untagged(tags_obs["feedback"])
            keys = set(obs) - {"system", "user", "tools", "feedback", "progress"}
            assert all(obs[k] == tags_obs[k] for k in keys) and list(obs["progress"]) == list(tags_obs["progress"])
            if obs["phase"] == 0 and not rest[1] and not rest[2]:
                assert obs["user"] == _untagged(tags_obs["user"])
        if tags_rest[1] or tags_rest[2]:
            break
    assert [env.memory.scratchpad for env in envs[1:]] == [envs[0].memory.scratchpad] * 2
    assert all(len(env.memory) == len(envs[0].memory) for env in envs)


def test_parse_action_and_parse_tool_calls_agree_on_the_worked_example():
    text = ("<update_memory>1. Need the director.</update_memory><update_query>Sagusk Tides director</update_query>"
            "<add_memory>Sagusk Tides was directed by Orin Vale.</add_memory><delete_memory>Memory 7</delete_memory>")
    assert parse_tool_calls(tags_to_tool_calls(text)).ops == parse_action(text).ops


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_envs_take_lists_of_calls(mode):
    """gymnasium's vector envs (async with its default shared memory) step tool actions as single envs do."""
    actions = [[call(ADD_MEMORY, text="Fact one.")], '<tool_call>{"name": "update_query", "arguments": '
               '{"keywords": "director"}}</tool_call>', [call("forget")], [call(DELETE_MEMORY, rank=1)]]
    singles = [gym.make(TINY, action_format="tools") for _ in range(2)]
    expected = [[env.reset(seed=5 + i)[0]["user"] for i, env in enumerate(singles)]]
    for t in range(4):
        expected.append([env.step(actions[(t + i) % 4])[0]["user"] for i, env in enumerate(singles)])
    vec = gym.make_vec(TINY, 2, vectorization_mode=mode, action_format="tools")
    try:
        got = [list(vec.reset(seed=[5, 6])[0]["user"])]
        for t in range(4):
            got.append(list(vec.step([actions[(t + i) % 4] for i in range(2)])[0]["user"]))
        assert vec.single_observation_space == singles[0].observation_space
    finally:
        vec.close()
    assert got == expected
