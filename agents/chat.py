"""Observation → prompt token ids with a tokenizer's chat template (shared by the local LLM policies), and
a response's tool calls back.

Where an observation offers tools (``action_format="tools"``), they go to the template as
``apply_chat_template(messages, tools=...)``, which renders them as the model was trained to see them
(Qwen's templates in the system message, Llama 3's in the first user message). A template that ignores
``tools=`` (SmolLM2-Instruct's, for one) would leave the model without them; it gets them instead as a
Hermes-style section at the end of the system message (:data:`TOOLS_SECTION`), the convention of the
templates that ship tool support, whose ``<tool_call>`` blocks the env reads (SmolLM2's own function-calling
format, a JSON list inside one ``<tool_call>`` block, reads too).
"""

from __future__ import annotations

import json
from typing import Any

from atommem_env import as_messages
from atommem_env.actions import ActionError
from atommem_env.tool_calls import extract_tool_calls

TOOLS_SECTION = """

# Tools

You may call one or more of the functions whose signatures are given within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each call, write a JSON object with the function's name and its arguments within <tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""  # noqa: E501

_PROBE = "atommem_probe_tool"
_RENDERS_TOOLS: dict[str, bool] = {}  # by chat template text: whether it shows tools= to the model


def chat_prompt_ids(tokenizer: Any, observation: dict[str, Any], max_tokens: int) -> tuple[list[int], bool]:
    """(ids, cut): the observation's chat (and tools, if it offers any) as token ids, ready for the
    assistant's turn.

    A prompt longer than ``max_tokens`` loses its middle, keeping the system prompt at the head and the
    end of the user message (the current question and the instructions) at the tail; ``cut`` says so.
    """
    messages, tools = chat_inputs(tokenizer, observation)
    ids = tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=True)
    if not isinstance(ids, list):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    ids = [int(t) for t in ids]
    if len(ids) <= max_tokens:
        return ids, False
    head = max_tokens // 2
    return ids[:head] + ids[len(ids) - (max_tokens - head) :], True


def chat_inputs(tokenizer: Any, observation: dict[str, Any]) -> tuple[list[dict[str, str]], list[dict] | None]:
    """(messages, tools) for the chat template: the observation's tools when its template renders them,
    else ``None`` with the tools written into the system message (see the module docstring)."""
    messages = as_messages(observation)
    tools = list(observation.get("tools") or ())
    if not tools:
        return messages, None
    if renders_tools(tokenizer):
        return messages, tools
    section = TOOLS_SECTION.format(tools="\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools))
    if messages[0]["role"] == "system":
        return [{"role": "system", "content": messages[0]["content"].rstrip() + section}, *messages[1:]], None
    return [{"role": "system", "content": section.lstrip()}, *messages], None


def renders_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template shows ``tools=`` to the model (checked once per template)."""
    key = repr(getattr(tokenizer, "chat_template", None))
    if key not in _RENDERS_TOOLS:
        probe = {"type": "function", "function": {"name": _PROBE, "description": "A probe.",
                                                  "parameters": {"type": "object", "properties": {}}}}
        messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
        text = tokenizer.apply_chat_template(messages, tools=[probe], add_generation_prompt=True, tokenize=False)
        _RENDERS_TOOLS[key] = _PROBE in text
    return _RENDERS_TOOLS[key]


def tool_response(tokenizer: Any, ids: list[int]) -> tuple[str, tuple[dict[str, Any], ...] | None]:
    """(text, calls) of a response to a prompt with tools.

    The text is decoded with special tokens kept (in some tokenizers ``<tool_call>`` is one) but without
    the end-of-turn tokens that close the response. The calls are those of its ``<tool_call>`` blocks when
    there are some and every one parsed, as a server's tool parser returns them; else ``None`` (the text
    is then the action, and the env feeds back what is wrong with it).
    """
    special = set(getattr(tokenizer, "all_special_ids", ()) or ()) | {tokenizer.eos_token_id}
    end = len(ids)
    while end and ids[end - 1] in special:
        end -= 1
    text = tokenizer.decode(ids[:end], skip_special_tokens=False)
    items = extract_tool_calls(text)
    if not items or any(isinstance(item, ActionError) for item in items):
        return text, None
    return text, tuple(items)  # type: ignore[arg-type]
