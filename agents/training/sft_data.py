"""Supervised samples from teacher trajectories, and the seeded order in which SFT visits them.

Every turn of a kept episode is one sample (SPEC §8). A turn of an LLM teacher carries the token ids
its policy saw and produced, and they are used unchanged (token-in, token-out). A scripted teacher
(e.g. the heuristic baseline) has only text, so the sample is built with the *student's* tokenizer the
way :class:`agents.hf_policy.TransformersPolicy` will later prompt the student: the observation's chat
through the chat template with the generation prompt (and the episode's tools, if it offered any), then
the response text followed by the token that ends an assistant turn (so the student learns to stop). A
tool-calling turn is used when its text holds its calls (a scripted teacher's ``<tool_call>`` text, a
local model's response); a server's turn whose tool parser took the calls out of the text is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.chat import chat_prompt_ids
from agents.training.evaluation import load_trajectories
from agents.training.grpo import Sample
from agents.training.rollout import Trajectory, Turn
from atommem_env.errors import ConfigError, DataError
from atommem_env.tool_calls import extract_tool_calls

log = logging.getLogger(__name__)

_PROBE = "Probe0end0of0turn"  # assistant content whose rendering shows what the template appends


@dataclass(frozen=True)
class SampleStats:
    """How teacher episodes became samples (logged, and stored in the run's config)."""

    episodes: int
    kept_episodes: int
    turns: int
    samples: int
    too_long: int  # turns dropped because prompt + response exceed max_seq_tokens
    cut_prompts: int  # text prompts whose middle was cut to max_prompt_tokens (as the policy would)
    from_token_ids: int  # samples that reuse the teacher's own token ids


def read_trajectories(paths: Sequence[str | Path]) -> list[Trajectory]:
    """Every episode of the ``trajectories.jsonl`` files written by ``experiments/evaluate.py``."""
    return [Trajectory.from_json(record) for path in paths for record in load_trajectories(Path(path))]


def keep_successful(trajectories: Sequence[Trajectory], min_reward: float) -> list[Trajectory]:
    """The episodes whose reward is at least ``min_reward`` (the paper keeps reward >= 0.5)."""
    return [t for t in trajectories if t.reward >= min_reward]


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """The token(s) the chat template puts right after an assistant message's content.

    A one-message assistant chat is rendered as text; what follows the content is tokenized and
    kept up to and including its first special token (ChatML: ``<|im_end|>``, dropping the newline
    after it, since generation stops at that token). Falls back to the eos token when the template
    shows nothing usable.

    Raises:
        ConfigError: neither the template nor the tokenizer names an end-of-turn token.
    """
    special = set(tokenizer.all_special_ids)
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _PROBE}], tokenize=False
        )
        suffix = text[text.index(_PROBE) + len(_PROBE):]
        ids = tokenizer(suffix, add_special_tokens=False)["input_ids"]
        end = next(i + 1 for i, token in enumerate(ids) if token in special)
        return [int(t) for t in ids[:end]]
    except Exception as error:  # noqa: BLE001 - no template, a template error, probe dropped, no special token
        log.warning("the chat template shows no end-of-turn token (%r); using the eos token", error)
    if tokenizer.eos_token_id is None:
        raise ConfigError(
            "The tokenizer has no chat template with an end-of-turn token and no eos token; set "
            "tokenizer.eos_token (or a chat template) before building SFT samples."
        )
    return [int(tokenizer.eos_token_id)]


def teacher_samples(
    trajectories: Sequence[Trajectory],
    tokenizer: Any,
    *,
    min_reward: float = 0.5,
    max_prompt_tokens: int = 16_384,
    max_seq_tokens: int = 20_480,
) -> tuple[list[Sample], SampleStats]:
    """One sample per turn of every episode with reward >= ``min_reward``, in file order.

    Args:
        max_prompt_tokens: text prompts longer than this lose their middle, as the student's policy
            would cut them (:func:`agents.chat.chat_prompt_ids`).
        max_seq_tokens: turns whose prompt + response is longer are dropped and counted.

    Raises:
        DataError: stored token ids that the student's tokenizer does not have.
    """
    kept = keep_successful(trajectories, min_reward)
    end_of_turn = end_of_turn_ids(tokenizer)
    samples: list[Sample] = []
    turns = too_long = cut_prompts = from_ids = 0
    for trajectory in kept:
        for number, turn in enumerate(trajectory.turns):
            turns += 1
            if turn.prompt_ids is not None and turn.response_ids:
                sample, cut = _stored_sample(turn, tokenizer, trajectory, number), False
                from_ids += 1
            else:
                sample, cut = _text_sample(turn, trajectory, tokenizer, max_prompt_tokens, end_of_turn)
            cut_prompts += cut
            if len(sample) > max_seq_tokens:
                too_long += 1
                continue
            samples.append(sample)
    stats = SampleStats(len(trajectories), len(kept), turns, len(samples), too_long, cut_prompts, from_ids)
    return samples, stats


def _text_sample(turn: Turn, trajectory: Trajectory, tokenizer: Any, max_prompt_tokens: int,
                 end_of_turn: list[int]) -> tuple[Sample, bool]:
    if turn.tool_calls is not None and not _calls_in_text(turn):
        raise DataError(
            f"A turn of episode {trajectory.episode_id!r} made tool calls that its response text does not hold (a "
            "server's tool parser moved them out of the text), so the text is not what the model wrote. Record "
            "the token ids (vLLM: extra_body={'return_token_ids': True}) or collect with a local policy."
        )
    observation = {"system": trajectory.system, "user": turn.user, "tools": trajectory.tools}
    prompt, cut = chat_prompt_ids(tokenizer, observation, max_prompt_tokens)
    response = tokenizer(turn.response, add_special_tokens=False)["input_ids"]
    return Sample(tuple(prompt), tuple(int(t) for t in response) + tuple(end_of_turn)), cut


def _calls_in_text(turn: Turn) -> bool:
    """Whether the response text holds exactly the turn's tool calls (names and arguments)."""
    def bare(calls: Sequence[Any]) -> list[Any]:
        return [(c.get("name"), c.get("arguments")) if isinstance(c, dict) else c for c in calls]

    return bare(extract_tool_calls(turn.response)) == bare(turn.tool_calls or [])


def _stored_sample(turn: Turn, tokenizer: Any, trajectory: Trajectory, number: int) -> Sample:
    ids = [*turn.prompt_ids, *turn.response_ids]  # type: ignore[misc]
    if max(ids) >= len(tokenizer) or min(ids) < 0:
        raise DataError(
            f"Turn {number} of episode {trajectory.episode_id!r} holds token id {max(ids)}, but the student's "
            f"tokenizer has {len(tokenizer)} tokens: these trajectories come from a model with another "
            "tokenizer. Train a student that shares the teacher's tokenizer."
        )
    return Sample(tuple(turn.prompt_ids), tuple(turn.response_ids))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# The order of visits: a seeded shuffle per epoch, so a data cursor is all a resume needs.


@dataclass(frozen=True)
class Cursor:
    """Where training stands in the data: the epoch, and how many samples of its order were used."""

    epoch: int = 0
    position: int = 0


def epoch_order(num_samples: int, seed: int, epoch: int) -> list[int]:
    """The sample indices of ``epoch`` in their shuffled order (a pure function of seed and epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_samples).tolist()


def steps_per_epoch(num_samples: int, batch_size: int) -> int:
    """Optimizer steps in one epoch of ``num_samples`` at ``batch_size`` (the last batch may be smaller)."""
    return -(-num_samples // batch_size)  # the last batch of an epoch may be smaller


def batches(num_samples: int, batch_size: int, epochs: int, seed: int,
            start: Cursor = Cursor()) -> Iterator[tuple[list[int], Cursor]]:
    """(sample indices of one optimizer step, the cursor after it), from ``start`` to the last epoch."""
    for epoch in range(start.epoch, epochs):
        order = epoch_order(num_samples, seed, epoch)
        first = start.position if epoch == start.epoch else 0
        for begin in range(first, num_samples, batch_size):
            end = min(begin + batch_size, num_samples)
            yield order[begin:end], (Cursor(epoch, end) if end < num_samples else Cursor(epoch + 1, 0))
