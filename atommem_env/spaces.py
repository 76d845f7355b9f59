"""Honest spaces for text and tool calls.

gymnasium's ``Text`` space only admits characters from a fixed charset (alphanumerics by default), so
ordinary prose with punctuation, newlines or accents would fall outside it. ``UnicodeText`` admits any
``str`` up to ``max_length`` characters, which is what an LLM's prompt and response really are.
``ToolAction`` admits that text or a list of tool calls (the action of ``action_format="tools"``);
``ToolSchemas`` holds the tools an observation offers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gymnasium.spaces import Space

from atommem_env.actions import OP_KINDS

# Sampled characters: ASCII letters, digits, punctuation, whitespace and a few non-ASCII letters, plus
# tag fragments so random actions sometimes exercise the action parser rather than always missing it.
_SAMPLE_ALPHABET = tuple(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n\t.,;:!?'\"()[]{}<>/\\-_éüßøжλ中文"
)
_SAMPLE_FRAGMENTS = (
    "<add_memory>", "</add_memory>", "<update_memory>", "</update_memory>", "<update_query>",
    "</update_query>", "<modify_memory>", "</modify_memory>", "<delete_memory>", "</delete_memory>",
    "<final_answer>", "</final_answer>", "<think>", "</think>", "Memory 1", "Memory 2: ", "\\boxed{",
)


class UnicodeText(Space[str]):
    """Any Python string of at most ``max_length`` characters.

    Args:
        max_length: upper bound on ``len(x)``; ``None`` means unbounded.
        sample_length: longest string that ``sample()`` produces.
        seed: optional seed for the space's own RNG.
    """

    def __init__(
        self, max_length: int | None = None, *, sample_length: int = 64, seed: int | None = None
    ) -> None:
        if max_length is not None and max_length < 0:
            raise ValueError(f"max_length={max_length} must be >= 0 or None.")
        self.max_length = max_length
        self.sample_length = sample_length if max_length is None else min(sample_length, max_length)
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Text has no fixed-size numpy form."""
        return False

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a string within ``max_length``."""
        return isinstance(x, str) and (self.max_length is None or len(x) <= self.max_length)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random string mixing characters and action-tag fragments (``mask`` is unsupported)."""
        if mask is not None or probability is not None:
            raise ValueError("UnicodeText.sample does not support mask or probability.")
        pieces: list[str] = []
        length = int(self.np_random.integers(0, self.sample_length + 1))
        while sum(map(len, pieces)) < length:
            if self.np_random.random() < 0.15:
                pieces.append(_SAMPLE_FRAGMENTS[self.np_random.integers(len(_SAMPLE_FRAGMENTS))])
            else:
                pieces.append(_SAMPLE_ALPHABET[self.np_random.integers(len(_SAMPLE_ALPHABET))])
        return "".join(pieces)[:length]

    def to_jsonable(self, sample_n: Any) -> list[str]:
        """Samples as a JSON list of strings."""
        return list(sample_n)

    def from_jsonable(self, sample_n: list[str]) -> list[str]:
        """Samples back from a JSON list of strings."""
        return list(sample_n)

    def __repr__(self) -> str:
        return f"UnicodeText(max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnicodeText) and other.max_length == self.max_length



_SAMPLE_TOOLS = (*OP_KINDS, "forget_everything")  # one unknown name, so samples exercise that error too
_SAMPLE_ARGUMENTS = ("text", "keywords", "answer", "rank")


class ToolAction(Space[Any]):
    """The action of ``action_format="tools"``: the response text, or a list of tool calls.

    A call is a dict, ``{"name": ..., "arguments": {...}}`` or the OpenAI API's
    ``{"type": "function", "function": {...}}``; what it holds is judged by the env's parser
    (:mod:`atommem_env.tool_calls`), which turns a malformed call into feedback, as it does malformed text.

    Args:
        max_length: upper bound on the text's length; ``None`` means unbounded.
        seed: optional seed for the space's own RNG.
    """

    def __init__(self, max_length: int | None = None, *, seed: int | None = None) -> None:
        self.text = UnicodeText(max_length)
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Neither text nor calls have a fixed-size numpy form."""
        return False

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is text within ``max_length`` or a list (or tuple) of dicts."""
        if isinstance(x, (list, tuple)):
            return all(isinstance(call, Mapping) for call in x)
        return self.text.contains(x)

    def sample(self, mask: Any = None, probability: Any = None) -> str | list[dict[str, Any]]:
        """A list of calls (some malformed), random text, or the ``<tool_call>`` text of calls, sometimes cut
        short; ``mask`` is unsupported."""
        if mask is not None or probability is not None:
            raise ValueError("ToolAction.sample does not support mask or probability.")
        calls = [self._call() for _ in range(int(self.np_random.integers(0, 4)))]
        draw = self.np_random.random()
        if draw < 0.6:
            return calls
        if draw < 0.8:
            return self.text.sample()
        text = "".join(f"<tool_call>{json.dumps(call)}</tool_call>" for call in calls)
        cut = len(text) if self.np_random.random() < 0.5 else int(self.np_random.integers(0, len(text) + 1))
        limit = len(text) if self.text.max_length is None else self.text.max_length
        return text[: min(cut, limit)]

    def seed(self, seed: int | None = None) -> Any:
        """Seed this space and its text part (so that every sample is reproducible)."""
        seeds = super().seed(seed)
        self.text.seed(int(self.np_random.integers(2**31)))
        return seeds

    def _call(self) -> dict[str, Any]:
        rng = self.np_random
        names = rng.choice(_SAMPLE_ARGUMENTS, size=int(rng.integers(0, 3)), replace=False)
        values = {name: int(rng.integers(0, 5)) if name == "rank" else self.text.sample() for name in names}
        return {"name": str(rng.choice(_SAMPLE_TOOLS)), "arguments": values}

    def __repr__(self) -> str:
        return f"ToolAction(max_length={self.text.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ToolAction) and other.text == self.text


class ToolSchemas(Space[tuple]):
    """``observation["tools"]``: the tools in the OpenAI ``tools`` format, as a tuple of dicts (empty when
    the action format has no tools), ready for ``apply_chat_template(..., tools=...)`` or a request."""

    def __init__(self, *, seed: int | None = None) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Schemas have no fixed-size numpy form."""
        return False

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a tuple of ``{"type": "function", "function": {"name": str, ...}}`` dicts."""
        return isinstance(x, tuple) and all(
            isinstance(tool, Mapping) and tool.get("type") == "function" and isinstance(tool.get("function"), Mapping)
            and isinstance(tool["function"].get("name"), str) for tool in x)

    def sample(self, mask: Any = None, probability: Any = None) -> tuple[dict[str, Any], ...]:
        """A few functions with random names and no arguments (``mask`` is unsupported)."""
        if mask is not None or probability is not None:
            raise ValueError("ToolSchemas.sample does not support mask or probability.")
        names = self.np_random.choice(_SAMPLE_TOOLS, size=int(self.np_random.integers(0, 4)), replace=False)
        empty = {"type": "object", "properties": {}}
        return tuple({"type": "function", "function": {"name": str(n), "parameters": empty}} for n in names)

    def __repr__(self) -> str:
        return "ToolSchemas()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ToolSchemas)
