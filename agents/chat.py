"""Observation → prompt token ids with a tokenizer's chat template (shared by the local LLM policies)."""

from __future__ import annotations

from typing import Any

from atommem_env import as_messages


def chat_prompt_ids(tokenizer: Any, observation: dict[str, Any], max_tokens: int) -> tuple[list[int], bool]:
    """(ids, cut): the observation's chat as token ids, ready for the assistant's turn.

    A prompt longer than ``max_tokens`` loses its middle, keeping the system prompt at the head and the
    end of the user message (the current question and the instructions) at the tail; ``cut`` says so.
    """
    ids = tokenizer.apply_chat_template(as_messages(observation), add_generation_prompt=True, tokenize=True)
    if not isinstance(ids, list):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    ids = [int(t) for t in ids]
    if len(ids) <= max_tokens:
        return ids, False
    head = max_tokens // 2
    return ids[:head] + ids[len(ids) - (max_tokens - head) :], True
