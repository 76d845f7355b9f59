"""The policy protocol: a batch of observations in, one completion per observation out.

LLM policies also return the prompt and response token ids and the sampling log-probabilities, so a
trainer never re-tokenizes text (token-in, token-out). Scripted policies leave those fields empty.
Where the observation offers tools (``action_format="tools"``), a completion may carry tool calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Completion:
    """One response of a policy.

    Attributes:
        text: the response (with tool calls, a server's ``content``: the text beside the calls).
        prompt_ids: token ids of the prompt the model saw (LLM policies).
        response_ids: token ids of the generated response (LLM policies).
        logprobs: sampling log-probability of each response token (LLM policies).
        tool_calls: the response's tool calls, ``{"name": ..., "arguments": {...}}`` each (and the
            server's ``id``, if any), when the observation offered tools and the calls were read: a
            server's ``tool_calls``, or a local model's ``<tool_call>`` blocks when all of them parsed.
            ``None`` otherwise: then the text is the action and the env reports what is wrong with it.
    """

    text: str
    prompt_ids: tuple[int, ...] | None = None
    response_ids: tuple[int, ...] | None = None
    logprobs: tuple[float, ...] | None = None
    tool_calls: tuple[dict[str, Any], ...] | None = None

    @property
    def action(self) -> str | list[dict[str, Any]]:
        """What ``env.step`` takes: the tool calls if there are any, else the text."""
        return list(self.tool_calls) if self.tool_calls is not None else self.text


@runtime_checkable
class Policy(Protocol):
    """Anything with a name and a batched ``act``.

    A policy sees observations only (no env internals): everything it needs is in the observation
    dict (``system``/``user`` messages, or the structured fields).
    """

    name: str

    def act(self, observations: Sequence[dict[str, Any]]) -> list[Completion]:
        """Respond to a batch of observations.

        Args:
            observations: one observation per env of the batch, as ``env.reset`` / ``env.step`` return them.

        Returns:
            One completion per observation, in input order; its ``action`` is that env's next action.
        """
        ...
