"""Parsing a response by the reference implementation's rules, where a protocol asks for them.

``ref: recurrent/impls/memory_long_short_multiquery.py``: ``_extract_paired_tags`` finds every
``<word ...>…</word>`` pair with one non-nested, case-insensitive regex (so an unknown wrapper tag
swallows the tags inside it, and there is no reasoning to skip); each known tag's content is stripped;
``Memory i`` is matched case-sensitively at the start of the content (``Memory 2 (dup)`` is accepted);
a modify/delete without it raises a ``KeyError`` that the caller's ``except`` turns into "skip the rest
of the response". Each of these is a separate rule of :class:`~atommem_env.protocol.Protocol`; with
none of them on, :func:`parse_with_rules` is :func:`~atommem_env.actions.parse_action`.
"""

from __future__ import annotations

import re

from atommem_env.actions import (
    MODIFY_MEMORY,
    OP_KINDS,
    RANKED_KINDS,
    ActionError,
    Op,
    ParsedAction,
    collect_ops,
    extract_tags,
    make_op,
    parse_action,
)
from atommem_env.protocol import PARSING_RULES, Protocol

_ANY_PAIR = re.compile(r"<(\w+)[^>]*>(.*?)</\1>", re.DOTALL | re.IGNORECASE)  # ref :552
_MODIFY_RANK = re.compile(r"Memory\s+(\d+)\s*:\s*(.*)", re.DOTALL)  # ref :505, case-sensitive
_DELETE_RANK = re.compile(r"Memory\s+(\d+)", re.DOTALL)  # ref :518, a prefix match


def parse_with_rules(text: str, protocol: Protocol) -> ParsedAction:
    """Parse one response under the protocol's parsing rules. Never raises."""
    if not any(getattr(protocol, rule) for rule in PARSING_RULES):
        return parse_action(text)
    items: list[tuple[str, str] | ActionError]
    if protocol.any_word_tags:
        pairs = ((name.lower(), content) for name, content in _ANY_PAIR.findall(text))
        items = [(name, content) for name, content in pairs if name in OP_KINDS]
    else:
        items = extract_tags(text)
    abort_on = "missing_memory_prefix" if protocol.malformed_rank_aborts else None
    return collect_ops(items, lambda item: _op(*item, protocol), "The response contained no action tag.",
                       abort_on=abort_on)


def _op(name: str, content: str, protocol: Protocol) -> tuple[Op | None, ActionError | None]:
    if name not in RANKED_KINDS or not protocol.reference_ranks:
        return make_op(name, content, allow_empty=protocol.empty_tags_act)
    content = content.strip()
    match = (_MODIFY_RANK if name == MODIFY_MEMORY else _DELETE_RANK).match(content)
    if match is None:
        return None, ActionError("missing_memory_prefix", f"<{name}> must start with 'Memory i'.", name)
    new_text = match.group(2).strip() if name == MODIFY_MEMORY else ""
    if name == MODIFY_MEMORY and not new_text and not protocol.empty_tags_act:
        return None, ActionError("empty_content", f"<{name}> gave no new text.", name)
    return Op(name, new_text, int(match.group(1)), raw=content), None  # rank 0 is allowed: see env.py
