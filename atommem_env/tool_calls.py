"""The action language as tool calls (``action_format="tools"``): parse calls into ops, and back.

The six operations are functions with JSON arguments (:data:`TOOL_ARGUMENTS`); their schemas, as the
model sees them, are in :mod:`atommem_env.tool_prompts`. An action is either

* a list of calls as an OpenAI-compatible server returns them: ``{"name": ..., "arguments": {...}}``,
  or the API's own ``{"type": "function", "function": {"name": ..., "arguments": "<JSON text>"}}``
  (``arguments`` may be an object or its JSON text; Llama's ``parameters`` is read as ``arguments``); or
* the model's raw text, whose calls are Hermes-style blocks, as Qwen's chat templates ask for them::

      <tool_call>
      {"name": "add_memory", "arguments": {"text": "Orin Vale was born in Quenhaven."}}
      </tool_call>

  A block may also hold a JSON list of calls (SmolLM2's format), a last block left open runs to the end
  of the text (vLLM's hermes parser reads it so), and reasoning in ``<think>…</think>`` is skipped. A
  response with no block that is nothing but JSON calls is read as those calls (Llama 3's format).

Calls run in order, as tags do, into the same :class:`~atommem_env.actions.Op` values, so the env's
dynamics, errors and reward are those of the tags; what differs is how a malformed call is reported:
``invalid_json`` (a block or an ``arguments`` string is not JSON), ``unknown_tool`` (no such tool, or no
name), ``bad_arguments`` (arguments missing, unexpected, or of the wrong type; a rank below 1) and, as for
tags, ``empty_content``, ``no_action`` and ``unclosed_tag`` (an open ``<think>``). Like
:func:`~atommem_env.actions.parse_action`, :func:`parse_tool_calls` never raises on a model's output.

The two formats convert through ops: ``tool_calls(parse_action(text).ops)`` is a tag action's tool form,
``render_ops(parse_tool_calls(calls).ops)`` a tool action's tags; :func:`tags_to_tool_calls` and
:func:`tool_calls_to_tags` do both and refuse an action whose parse had errors (an action without any op
converts to the empty action, whose ``no_action`` is the same in both formats).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from atommem_env.actions import (
    ADD_MEMORY,
    DELETE_MEMORY,
    FINAL_ANSWER,
    MODIFY_MEMORY,
    OP_KINDS,
    UPDATE_MEMORY,
    UPDATE_QUERY,
    ActionError,
    Op,
    ParsedAction,
    check_renderable,
    collect_ops,
    extract_boxed,
    parse_action,
    render_ops,
    strip_thinking,
)
from atommem_env.errors import RenderError

#: Each tool's arguments, in order, with their JSON types (all required; no others are accepted).
TOOL_ARGUMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    UPDATE_MEMORY: (("text", "string"),),
    UPDATE_QUERY: (("keywords", "string"),),
    ADD_MEMORY: (("text", "string"),),
    MODIFY_MEMORY: (("rank", "integer"), ("text", "string")),
    DELETE_MEMORY: (("rank", "integer"),),
    FINAL_ANSWER: (("answer", "string"),),
}
ToolCall = dict[str, Any]

_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_THINK_OPEN = re.compile(r"<\s*think\s*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)
_PYTHON_TAG = "<|python_tag|>"  # Llama 3.1 opens a tool call with it
_SEPARATORS = re.compile(r"[\s;]*")  # between bare JSON calls (Llama 3 separates several with "; ")


# ------------------------------------------------------------------------------------- parsing
def parse_tool_calls(action: str | Sequence[Mapping[str, Any]]) -> ParsedAction:
    """The ops of one tool action (a list of calls, or text with ``<tool_call>`` blocks). Never raises
    on the calls' content; see the module docstring for the rules and error codes."""
    if isinstance(action, str):
        items = extract_tool_calls(action)
    else:
        items = [flatten_call(c) if isinstance(c, Mapping) else _not_a_call(c) for c in action]
    return collect_ops(items, op_of_call, "The response contained no tool call.")


def calls_within(calls: Sequence[Any], max_tokens: int, tokenizer: Any) -> list[Any]:
    """The first calls whose JSON texts add up to at most ``max_tokens`` tokens (the response budget of a
    list action; the tokenizer is the env's)."""
    kept: list[Any] = []
    used = 0
    for call in calls:
        used += tokenizer.count(json.dumps(call, ensure_ascii=False, default=str))
        if used > max_tokens:
            break
        kept.append(call)
    return kept


def extract_tool_calls(text: str) -> list[ToolCall | ActionError]:
    """In order of appearance: each call of a response's text (flattened, see :func:`flatten_call`), or
    the error of a block that is not JSON calls. Reasoning is skipped; an open ``<think>`` ends the text."""
    text, unclosed = _without_reasoning(text)
    blocks = [m.group(1) for m in _BLOCK.finditer(text)]
    if not blocks:
        bare = text.strip().removeprefix(_PYTHON_TAG).lstrip()
        blocks = [bare] if bare.startswith(("{", "[")) else []
    items: list[ToolCall | ActionError] = []
    for block in blocks:
        items += _calls_of_block(block)
    return items + ([unclosed] if unclosed else [])


def _without_reasoning(text: str) -> tuple[str, ActionError | None]:
    """The text without ``<think>…</think>`` blocks (and without reasoning begun in the prompt); an
    unclosed ``<think>`` drops the rest, with its error."""
    text = strip_thinking(text)
    kept, pos = [], 0
    while (opening := _THINK_OPEN.search(text, pos)) is not None:
        kept.append(text[pos : opening.start()])
        closing = _THINK_CLOSE.search(text, opening.end())
        if closing is None:
            return "".join(kept), ActionError("unclosed_tag", "<think> was never closed; the rest was ignored.",
                                              "think")
        pos = closing.end()
    return "".join(kept) + text[pos:], None


def _calls_of_block(block: str) -> list[ToolCall | ActionError]:
    """The calls of one block: one JSON object, a JSON list of them, or several separated by ``;``."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos = _SEPARATORS.match(block, 0).end()  # type: ignore[union-attr]
    while pos < len(block):
        try:
            value, pos = decoder.raw_decode(block, pos)
        except json.JSONDecodeError as error:
            return [ActionError("invalid_json", f"A tool call is not valid JSON ({error.msg} at character "
                                                f"{error.pos} of its block); write {_CALL_SHAPE}.")]
        values += value if isinstance(value, list) else [value]
        pos = _SEPARATORS.match(block, pos).end()  # type: ignore[union-attr]
    return [flatten_call(v) if isinstance(v, Mapping) else _not_a_call(v) for v in values]


_CALL_SHAPE = '{"name": <tool name>, "arguments": {<argument>: <value>, ...}}'


def _not_a_call(value: Any) -> ActionError:
    return ActionError("unknown_tool", f"A tool call must be a JSON object {_CALL_SHAPE}, not {_show(value)}.")


def _show(value: Any) -> str:
    """A value as the feedback quotes it: its JSON, at most 40 characters (its repr if it has no JSON)."""
    try:
        return json.dumps(value, ensure_ascii=False)[:40]
    except (TypeError, ValueError):
        return repr(value)[:40]


def flatten_call(call: Mapping[str, Any]) -> ToolCall:
    """A call as ``{"name", "arguments"}`` (plus its ``id``, if any), from any of the shapes the module
    docstring lists. ``arguments`` given as JSON text of an object becomes that object; other text is
    kept as it is (the parser reports it)."""
    inner = call.get("function")
    source = inner if isinstance(inner, Mapping) else call
    flat: ToolCall = {"name": source.get("name")}
    arguments = source.get("arguments", source.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            decoded = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            decoded = None
        arguments = decoded if isinstance(decoded, dict) else arguments
    flat["arguments"] = arguments
    if "id" in call:
        flat["id"] = call["id"]
    return flat


def op_of_call(call: Mapping[str, Any]) -> tuple[Op | None, ActionError | None]:
    """The op of one flattened call, or why it cannot run."""
    name = call.get("name")
    if not isinstance(name, str) or name not in TOOL_ARGUMENTS:
        shown = "no name" if name is None else repr(name)[:40]
        return None, ActionError("unknown_tool", f"Unknown tool ({shown}); the tools are {', '.join(OP_KINDS)}.")
    arguments = call.get("arguments")
    if isinstance(arguments, str):  # JSON text that flatten_call could not read as an object
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None, ActionError("invalid_json", f"The arguments of {name} are not valid JSON: "
                                                     f"{arguments[:60]!r}.", name)
    if not isinstance(arguments, Mapping):
        return None, _bad_arguments(name, f"arguments must be an object, not {type(arguments).__name__}.")
    problem = _argument_problem(name, arguments)
    if problem:
        return None, _bad_arguments(name, problem)
    return _op(name, arguments)


def _bad_arguments(name: str, problem: str) -> ActionError:
    return ActionError("bad_arguments", f"{name}: {problem} Expected {_signature(name)}.", name)


def _argument_problem(name: str, arguments: Mapping[str, Any]) -> str | None:
    expected = dict(TOOL_ARGUMENTS[name])
    missing = [a for a in expected if a not in arguments]
    extra = [a for a in arguments if a not in expected]
    if missing or extra:
        return " ".join(p for p in (f"missing {missing}." if missing else "",
                                    f"unexpected {extra}." if extra else "") if p)
    for argument, kind in expected.items():
        value = arguments[argument]
        if kind == "string" and not isinstance(value, str):
            return f"{argument} must be a string, not {_show(value)}."
        if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            return f"{argument} must be an integer >= 1 (the i of the shown Memory i), not {_show(value)}."
    return None


def _signature(name: str) -> str:
    return f"{name}(" + ", ".join(f"{a}: {t}" for a, t in TOOL_ARGUMENTS[name]) + ")"


def _op(name: str, arguments: Mapping[str, Any]) -> tuple[Op | None, ActionError | None]:
    """As :func:`~atommem_env.actions.make_op` makes the op of a tag: text stripped, an answer unboxed."""
    if name == DELETE_MEMORY:
        return Op(name, "", arguments["rank"]), None
    argument = TOOL_ARGUMENTS[name][-1][0]
    text = arguments[argument]
    if name == UPDATE_MEMORY:  # an empty scratchpad write is a legitimate "clear"
        return Op(name, text.strip()), None
    value = extract_boxed(text) if name == FINAL_ANSWER else text.strip()
    if not value:
        return None, ActionError("empty_content", f"{name} was called with an empty {argument}.", name)
    if name == MODIFY_MEMORY:
        return Op(name, value, arguments["rank"]), None
    return Op(name, value, raw=text), None


# ------------------------------------------------------------------------------------ rendering
def tool_call(op: Op) -> ToolCall:
    """The call of one op, such that ``parse_tool_calls([tool_call(op)]).ops == (op,)``.

    Raises:
        RenderError: the op is malformed or would not survive the round trip (surrounding whitespace,
            an answer that holds ``\\boxed{}``).
    """
    _check_callable(op)
    values = {"rank": op.rank, "text": op.text, "keywords": op.text, "answer": op.text}
    return {"name": op.kind, "arguments": {a: values[a] for a, _ in TOOL_ARGUMENTS[op.kind]}}


def tool_calls(ops: Sequence[Op]) -> list[ToolCall]:
    """The calls of several ops, in order (what a server returns as ``tool_calls``)."""
    return [tool_call(op) for op in ops]


def render_tool_calls(ops: Sequence[Op]) -> str:
    """Hermes-style text of several ops: one ``<tool_call>`` block per op, executed in order.

    ``<`` is written ``\\u003c`` inside the JSON, so a text holding ``</tool_call>`` cannot end its block.
    """
    blocks = (json.dumps(call, ensure_ascii=False).replace("<", "\\u003c") for call in tool_calls(ops))
    return "\n".join(f"<tool_call>\n{block}\n</tool_call>" for block in blocks)


def _check_callable(op: Op) -> None:
    check_renderable(op)  # what a tag cannot express, a call cannot either; then what a call cannot round-trip
    if op.text != op.text.strip():
        raise RenderError(f"{op!r}: text with surrounding whitespace cannot round-trip.")
    if op.kind not in (UPDATE_MEMORY, DELETE_MEMORY) and not op.text:
        raise RenderError(f"{op!r}: {op.kind} needs non-empty text.")
    if op.kind == FINAL_ANSWER and extract_boxed(op.text) != op.text:
        raise RenderError(f"{op!r}: an answer holding \\boxed{{}} would be read as the box's content.")


# ----------------------------------------------------------------------------------- conversion
def tags_to_tool_calls(text: str) -> list[ToolCall]:
    """The tool form of a tag action: the same ops, as calls.

    Raises:
        RenderError: the tag action had errors (they have no tool form), or an op cannot be a call.
    """
    parsed = parse_action(text)
    _refuse_errors(parsed, "tag action")
    return tool_calls(parsed.ops)


def tool_calls_to_tags(action: str | Sequence[Mapping[str, Any]]) -> str:
    """The tag form of a tool action (calls or text): the same ops, as tags.

    Raises:
        RenderError: the tool action had errors, or an op's text cannot be a tag's (see
            :func:`~atommem_env.actions.render_op`).
    """
    parsed = parse_tool_calls(action)
    _refuse_errors(parsed, "tool action")
    return render_ops(parsed.ops)


def _refuse_errors(parsed: ParsedAction, what: str) -> None:
    """An action with no op converts to the empty action (its ``no_action`` is the other's); any other error
    has no form in the other format."""
    errors = [e for e in parsed.errors if e.code != "no_action"]
    if errors:
        codes = ", ".join(e.code for e in errors)
        raise RenderError(f"The {what} has errors ({codes}); only its well-formed ops have another form.")

