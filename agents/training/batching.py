"""Turn samples into padded tensors, and split an optimizer step into micro-batches by a token budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from agents.training.grpo import Sample


@dataclass(frozen=True)
class Batch:
    """Right-padded samples, prompt then response in each row.

    Shapes: B rows, T = the longest prompt + response of the batch.

    Attributes:
        input_ids: (B, T) long, padded with the pad token id.
        attention_mask: (B, T) long, 1 on real tokens. Right padding keeps each row's real tokens at
            positions 0..L-1, which is what HF models assume when they derive position ids.
        response_mask: (B, T) float, 1 exactly on response tokens (the loss mask).
        sampler_logprobs: (B, T) float, the sampler's logprob of each response token, 0 elsewhere.
        advantages: (B, 1) float, each row's advantage (broadcasts over T).
        first_response: smallest prompt length of the batch: no row has a response token before it.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    sampler_logprobs: torch.Tensor
    advantages: torch.Tensor
    first_response: int

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device) if isinstance(getattr(self, f.name), torch.Tensor)
            else getattr(self, f.name)
            for f in fields(self)
        }
        return Batch(**moved)

    @property
    def prompt_mask(self) -> torch.Tensor:
        """(B, T) float, 1 on the prompt tokens that have a token before them (those a prompt loss scores)."""
        mask = self.attention_mask.to(self.response_mask.dtype) - self.response_mask
        mask[:, 0] = 0.0
        return mask

    @property
    def num_tokens(self) -> int:
        """Real (unpadded) prompt and response tokens."""
        return int(self.attention_mask.sum())


def collate(samples: Sequence[Sample], pad_token_id: int = 0) -> Batch:
    """Pad samples to a :class:`Batch` (response tokens without logprobs get old logprob 0)."""
    if not samples:
        raise ValueError("collate needs at least one sample.")
    width = max(len(s) for s in samples)
    shape = (len(samples), width)
    input_ids = torch.full(shape, pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    response_mask = torch.zeros(shape, dtype=torch.float32)
    sampler_logprobs = torch.zeros(shape, dtype=torch.float32)
    for row, sample in enumerate(samples):
        start, end = len(sample.prompt_ids), len(sample)
        input_ids[row, :end] = torch.tensor(sample.prompt_ids + sample.response_ids, dtype=torch.long)
        attention_mask[row, :end] = 1
        response_mask[row, start:end] = 1.0
        if sample.logprobs is not None:
            sampler_logprobs[row, start:end] = torch.tensor(sample.logprobs, dtype=torch.float32)
    advantages = torch.tensor([[s.advantage] for s in samples], dtype=torch.float32)
    first_response = min(len(s.prompt_ids) for s in samples)
    return Batch(input_ids, attention_mask, response_mask, sampler_logprobs, advantages, first_response)


def pack_micro_batches(samples: Sequence[Sample], token_budget: int) -> list[list[Sample]]:
    """Split samples into micro-batches whose padded size (rows x longest row) fits ``token_budget``.

    Samples are sorted longest first, so rows of similar length share a micro-batch and little is
    padding. A sample longer than the budget gets a micro-batch of its own rather than an error: the
    budget bounds memory, and a row cannot be split.
    """
    ordered = sorted(samples, key=len, reverse=True)
    micro_batches: list[list[Sample]] = []
    for sample in ordered:
        current = micro_batches[-1] if micro_batches else None
        # Sorted longest first, so the current micro-batch's first row is its longest.
        if current is not None and (len(current) + 1) * len(current[0]) <= token_budget:
            current.append(sample)
        else:
            micro_batches.append([sample])
    return micro_batches


def micro_batch_passes(shards: Sequence[Sequence[Sample]], token_budget: int) -> int:
    """Forward/backward passes of the busiest rank when each rank packs its shard by ``token_budget``.

    Sharded (FSDP) ranks must all run this many passes: each pass holds collectives.
    """
    return max((len(pack_micro_batches(shard, token_budget)) for shard in shards), default=0)


def pad_micro_batches(micro_batches: Sequence[Sequence[Sample]], passes: int,
                      pad_token_id: int) -> list[tuple[list[Sample], float]]:
    """``(micro_batch, weight)`` for ``passes`` passes: the real micro-batches (weight 1), then fillers.

    A filler is one two-token sample with weight 0: its pass takes part in every collective of a
    forward and backward while adding exactly zero to the gradients and metrics.

    Raises:
        ValueError: fewer passes than micro-batches (the plan and the packing disagree).
    """
    if passes < len(micro_batches):
        raise ValueError(f"{len(micro_batches)} micro-batches cannot run in {passes} passes; compute the passes "
                         "with micro_batch_passes over every rank's shard, with the same token budget.")
    filler = Sample((pad_token_id,), (pad_token_id,), (0.0,), 0.0)
    return [(list(chunk), 1.0) for chunk in micro_batches] + [([filler], 0.0)] * (passes - len(micro_batches))
