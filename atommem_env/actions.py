"""The action language: parse a model's free-text response into memory operations, and back.

A response is executed as the sequence of known paired tags it contains, in order of appearance
(case-insensitive, outermost pairs only; text outside tags is ignored). ``parse_action`` never
raises: every malformed piece becomes an :class:`ActionError` and the well-formed tags still run.
Checks that need the episode's state (does ``Memory 3`` exist? is a fourth read allowed?) belong to
the environment; this module only knows text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from atommem_env.errors import RenderError

_Item = TypeVar("_Item")  # what an extractor yields: a (tag, content) pair, a tool call...

UPDATE_MEMORY = "update_memory"  # scratchpad (short-term memory): replace wholesale
UPDATE_QUERY = "update_query"  # Read: replace the retrieval query
ADD_MEMORY = "add_memory"  # Create
MODIFY_MEMORY = "modify_memory"  # Update: "Memory i: new text"
DELETE_MEMORY = "delete_memory"  # Delete: "Memory i"
FINAL_ANSWER = "final_answer"  # answer the current question, \boxed{...}

OP_KINDS = (UPDATE_MEMORY, UPDATE_QUERY, ADD_MEMORY, MODIFY_MEMORY, DELETE_MEMORY, FINAL_ANSWER)
RANKED_KINDS = (MODIFY_MEMORY, DELETE_MEMORY)


@dataclass(frozen=True)
class Op:
    """One memory operation.

    Attributes:
        kind: one of :data:`OP_KINDS`.
        text: the content: scratchpad text, query, entry text, or the extracted answer.
        rank: for ``modify_memory`` / ``delete_memory``, the ``Memory i`` number (from 1).
    """

    kind: str
    text: str = ""
    rank: int | None = None
    # The tag's content as written (for final_answer: before box extraction), for scoring rules that
    # read the box themselves; not part of the op's identity.
    raw: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class ActionError:
    """A piece of the response that could not be executed.

    Attributes:
        code: machine-readable reason (``no_action``, ``unclosed_tag``, ``empty_content``,
            ``missing_memory_prefix``, or one of the environment's codes).
        message: one short sentence for the agent's feedback.
        tag: the tag involved, if any.
    """

    code: str
    message: str
    tag: str | None = None


@dataclass(frozen=True)
class ParsedAction:
    """The operations of one response, in order, and what could not be parsed."""

    ops: tuple[Op, ...]
    errors: tuple[ActionError, ...]
    # Only under the reference's rules (atommem_env.reference_actions): a malformed tag stopped the
    # response, so the ops after it were dropped and the chunk must not advance.
    aborted: bool = False


_TAG = re.compile(r"<\s*(/?)\s*(" + "|".join(OP_KINDS) + r"|think)\s*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)
_RANK_TEXT = re.compile(r"\s*Memory\s*#?\s*(\d+)\s*[:：]\s*(.*)", re.IGNORECASE | re.DOTALL)
_RANK_ONLY = re.compile(r"\s*Memory\s*#?\s*(\d+)\s*[.;,]?\s*", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\s*\{")


def parse_action(text: str) -> ParsedAction:
    """Parse one response. Never raises; see the module docstring for the rules."""
    return collect_ops(extract_tags(text), lambda item: make_op(*item), "The response contained no action tag.")


def collect_ops(items: Iterable[_Item | ActionError], make: Callable[[_Item], tuple[Op | None, ActionError | None]],
                nothing: str, *, abort_on: str | None = None) -> ParsedAction:
    """The parsed action of extracted ``items`` (tags, tool calls...): each item is made into an op or its
    error by ``make``; extraction errors pass through. ``no_action`` (with the message ``nothing``) when
    there was nothing at all. An error coded ``abort_on`` stops the response there (the reference's rule:
    the ops after it are dropped, ``aborted`` is set)."""
    ops: list[Op] = []
    errors: list[ActionError] = []
    for item in items:
        if isinstance(item, ActionError):
            errors.append(item)
            continue
        op, error = make(item)
        if op is not None:
            ops.append(op)
            continue
        assert error is not None, "make returned neither an op nor an error"
        errors.append(error)
        if error.code == abort_on:
            errors.append(ActionError("response_aborted", "The rest of the response was not executed."))
            return ParsedAction(tuple(ops), tuple(errors), aborted=True)
    if not ops and not errors:
        errors.append(ActionError("no_action", nothing))
    return ParsedAction(tuple(ops), tuple(errors))


def extract_tags(text: str) -> list[tuple[str, str] | ActionError]:
    """In order of appearance: (lower-case name, content) of each known outermost tag, or the error
    of an unclosed one."""
    text = strip_thinking(text)
    items: list[tuple[str, str] | ActionError] = []
    pos = 0
    while (match := _TAG.search(text, pos)) is not None:
        closing, name = match.group(1), match.group(2).lower()
        if closing:  # a stray closing tag: nothing to execute
            pos = match.end()
            continue
        end = _find_close(text, name, match.end())
        if end is None:
            if name == "think":  # cut off while reasoning: nothing after it is an action
                items.append(ActionError("unclosed_tag", "<think> was never closed; the rest was ignored.", name))
                break
            items.append(ActionError("unclosed_tag", f"<{name}> was never closed by </{name}>.", name))
            pos = match.end()
            continue
        content_end, pos = end
        if name != "think":
            items.append((name, text[match.end() : content_end]))
    return items


def strip_thinking(text: str) -> str:
    """Drop reasoning that began in the prompt: the text up to a lone ``</think>`` (one with no
    ``<think>`` before it)."""
    opening = re.search(r"<\s*think\s*>", text, re.IGNORECASE)
    closing = _THINK_CLOSE.search(text)
    if closing and (opening is None or closing.start() < opening.start()):
        return text[closing.end() :]
    return text


def _find_close(text: str, name: str, start: int) -> tuple[int, int] | None:
    """(start of the matching ``</name>``, end of it), counting nested ``<name>`` of the same kind."""
    depth = 1
    for match in _TAG.finditer(text, start):
        if match.group(2).lower() != name:
            continue
        depth += -1 if match.group(1) else 1
        if depth == 0:
            return match.start(), match.end()
    return None


def make_op(name: str, content: str, allow_empty: bool = False) -> tuple[Op | None, ActionError | None]:
    """The op of one tag (a known kind) and its content, or why it is malformed.

    ``allow_empty`` keeps an empty query, entry, modify text or answer as an op with empty text (the
    reference's behaviour, see :mod:`atommem_env.protocol`) instead of an ``empty_content`` error.
    """
    if name == UPDATE_MEMORY:  # an empty scratchpad write is a legitimate "clear"
        return Op(name, content.strip()), None
    if name in RANKED_KINDS:
        return _ranked_op(name, content, allow_empty)
    value = extract_boxed(content) if name == FINAL_ANSWER else content.strip()
    if not value and not allow_empty:
        return None, ActionError("empty_content", f"<{name}> was empty.", name)
    return Op(name, value, raw=content), None


def _ranked_op(name: str, content: str, allow_empty: bool = False) -> tuple[Op | None, ActionError | None]:
    if name == MODIFY_MEMORY:
        match = _RANK_TEXT.fullmatch(content)
        example = "<modify_memory>Memory 2: new text</modify_memory>"
    else:
        match = _RANK_ONLY.fullmatch(content)
        example = "<delete_memory>Memory 2</delete_memory>"
    if match is None:
        return None, ActionError(
            "missing_memory_prefix", f"<{name}> must name the entry as in {example}.", name
        )
    new_text = match.group(2).strip() if name == MODIFY_MEMORY else ""
    if name == MODIFY_MEMORY and not new_text and not allow_empty:
        return None, ActionError("empty_content", f"<{name}> gave no new text.", name)
    return Op(name, new_text, int(match.group(1))), None


def extract_boxed(text: str) -> str:
    """Content of the last ``\\boxed{...}`` (balanced braces) in ``text``, else the stripped text."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[start:i].strip()
    return text.strip()


# ----------------------------------------------------------------------------------- rendering
def render_op(op: Op) -> str:
    """Action text for one op, such that ``parse_action(render_op(op)).ops == (op,)``.

    Raises:
        RenderError: the op is malformed or its text cannot survive a round trip (surrounding
            whitespace, an action tag inside it, unbalanced braces in an answer).
    """
    check_renderable(op)
    if op.kind in RANKED_KINDS:
        body = f"Memory {op.rank}" + (f": {op.text}" if op.kind == MODIFY_MEMORY else "")
    elif op.kind == FINAL_ANSWER:
        body = f"\\boxed{{{op.text}}}"
    else:
        body = op.text
    return f"<{op.kind}>{body}</{op.kind}>"


def render_ops(ops: Iterable[Op]) -> str:
    """Action text for several ops, one tag per line, executed in the given order."""
    return "\n".join(render_op(op) for op in ops)


def check_renderable(op: Op) -> None:
    """Refuse an op no action can express (unknown kind, a rank where none belongs, text on a delete)."""
    if op.kind not in OP_KINDS:
        raise RenderError(f"Unknown op kind {op.kind!r}; expected one of {OP_KINDS}.")
    if (op.rank is not None) != (op.kind in RANKED_KINDS) or (op.rank is not None and op.rank < 1):
        raise RenderError(f"{op!r}: a rank >= 1 is required for {RANKED_KINDS} and forbidden otherwise.")
    if op.kind == DELETE_MEMORY and op.text:
        raise RenderError(f"{op!r}: delete_memory takes no text.")
    if op.text != op.text.strip() or _TAG.search(op.text):
        raise RenderError(f"{op!r}: text with surrounding whitespace or action tags cannot round-trip.")
    if op.kind not in (UPDATE_MEMORY, DELETE_MEMORY) and not op.text:
        raise RenderError(f"{op!r}: {op.kind} needs non-empty text.")
    if op.kind == FINAL_ANSWER and extract_boxed(f"\\boxed{{{op.text}}}") != op.text:
        raise RenderError(f"{op!r}: the answer's braces or \\boxed would not round-trip.")
