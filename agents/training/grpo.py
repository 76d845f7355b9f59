"""GRPO as small pure functions: group advantages, step-wise samples, and the token-level loss terms.

The recipe is the paper's (SPEC §8): advantage = episode reward minus the mean reward of its group (the
rollouts that share one initial state), no std scaling by default; every turn of an episode is its own
training sample and carries the episode's advantage; the policy-gradient loss is clipped asymmetrically
(0.2 low / 0.28 high) and, for negative advantages, dual-clipped at c = 3; a KL penalty to a frozen
reference uses the low-variance k3 estimator; losses are averaged over all response tokens of the step
(token-mean). Samples whose advantage is 0 carry no signal and, without a KL term, are never forwarded
(:func:`samples_to_forward`).

Token ids and sampling log-probabilities come from the policy's completions, carried on rollout turns;
nothing here tokenizes text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from agents.training.rollout import Trajectory, episode_group

# The reference's clip settings: clip_ratio_low 0.2 (verl/trainer/config/ppo_trainer.yaml:43), clip_ratio_high
# 0.28 (script/train/run_memory_longcontext.sh: actor_rollout_ref.actor.clip_ratio_high=0.28) and the dual-clip
# bound clip_ratio_c 3.0 (ppo_trainer.yaml:45, applied in verl/trainer/ppo/core_algos.py:423-427).
CLIP_LOW = 0.2
CLIP_HIGH = 0.28
DUAL_CLIP = 3.0
STD_EPS = 1e-6
# verl's low_var_kl clamps both the log-ratio (so exp cannot overflow) and the estimate (so one token
# far off the reference cannot dominate the step); the same bounds are kept here.
KL_LOG_RATIO_BOUND = 20.0
KL_VALUE_BOUND = 10.0


@dataclass(frozen=True)
class Sample:
    """One training sample: a prompt, the response the policy gave, and the response's advantage.

    Attributes:
        prompt_ids: token ids of the prompt, length P >= 1.
        response_ids: token ids of the response, length R >= 1.
        logprobs: sampling log-probability of each response token, length R (``None`` for SFT data).
        advantage: the episode's advantage (0 for SFT data).
    """

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    logprobs: tuple[float, ...] | None = None
    advantage: float = 0.0

    def __post_init__(self) -> None:
        if not self.prompt_ids or not self.response_ids:
            raise ValueError(
                f"A sample needs at least one prompt and one response token (got {len(self.prompt_ids)} and "
                f"{len(self.response_ids)}); drop empty responses before building samples."
            )
        if self.logprobs is not None and len(self.logprobs) != len(self.response_ids):
            raise ValueError(
                f"A sample has {len(self.logprobs)} logprobs for {len(self.response_ids)} response tokens; "
                "the policy must return one sampling logprob per generated token."
            )

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)


# ---------------------------------------------------------------------------------------------------
# Advantages and samples (plain Python / numpy)


def group_advantages(
    rewards: Sequence[float], groups: Sequence[Hashable], *, scale_by_std: bool = False, eps: float = STD_EPS
) -> np.ndarray:
    """Reward minus the mean reward of its group, optionally divided by the group's std.

    Args:
        rewards: one reward per episode, shape (N,).
        groups: one hashable group key per episode, shape (N,); episodes with equal keys form a group.
        scale_by_std: divide by ``std + eps``, the sample std (ddof=1) as in verl and TRL. The paper
            does not scale (SPEC §8).
        eps: keeps zero-variance groups finite (their advantages are 0 either way).

    Returns:
        float64 array of shape (N,). A group of one episode gets advantage 0 (it has nothing to be
        compared with).
    """
    values = np.asarray(rewards, dtype=np.float64)
    if len(groups) != len(values):
        raise ValueError(f"group_advantages got {len(values)} rewards but {len(groups)} group keys.")
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, key in enumerate(groups):
        members[key].append(i)
    advantages = np.zeros_like(values)
    for index in members.values():
        group = values[index]
        if group.max() == group.min():
            continue  # exactly 0: the float mean of equal rewards can miss them by an ulp, and std scaling
            # would blow that up to ~1e-10
        centred = group - group.mean()
        if scale_by_std and len(group) > 1:
            centred = centred / (group.std(ddof=1) + eps)
        advantages[index] = centred
    return advantages


def turn_samples(trajectories: Sequence[Trajectory], advantages: Sequence[float]) -> list[Sample]:
    """One sample per turn, each carrying its episode's advantage (SPEC §8: step-wise samples).

    Raises:
        ValueError: a turn has no token ids or logprobs (e.g. a scripted or OpenAI-compatible policy
            without token output); GRPO needs an LLM policy that returns them.
    """
    if len(advantages) != len(trajectories):
        raise ValueError(f"turn_samples got {len(advantages)} advantages for {len(trajectories)} trajectories.")
    samples = []
    for trajectory, advantage in zip(trajectories, advantages, strict=True):
        for number, turn in enumerate(trajectory.turns):
            if turn.prompt_ids is None or turn.response_ids is None or turn.logprobs is None:
                raise ValueError(
                    f"Turn {number} of episode {trajectory.episode_id!r} has no prompt_ids/response_ids/logprobs; "
                    "roll out with an LLM policy whose completions return token ids and sampling logprobs."
                )
            samples.append(
                Sample(tuple(turn.prompt_ids), tuple(turn.response_ids), tuple(turn.logprobs), float(advantage))
            )
    return samples


def grpo_samples(trajectories: Sequence[Trajectory], *, scale_by_std: bool = False) -> list[Sample]:
    """Group the episodes by initial state, compute their advantages and cut them into turn samples."""
    advantages = group_advantages(
        [t.reward for t in trajectories], [episode_group(t) for t in trajectories], scale_by_std=scale_by_std
    )
    return turn_samples(trajectories, advantages.tolist())


def samples_to_forward(samples: Sequence[Sample], *, kl_coef: float) -> list[Sample]:
    """The samples whose forward pass can change the step's gradient.

    With no KL term a sample of advantage 0 adds exactly 0 to the loss and to the gradient (every form
    of its policy-gradient term is ``-0 * ratio``), so it is left out; its response tokens still count
    in the step's token-mean denominator (see :meth:`agents.training.learner.Learner.grpo_step`), so the
    loss and gradient are those of the whole step. Flat groups (every rollout scored alike) are all
    such samples. With a KL term every sample is kept: its KL gradient is part of the paper's objective,
    and the reference trains on every sample of a step (its group filter, ``algorithm.filter_groups`` in
    verl/trainer/ppo/ray_trainer.py:1128-1152, is off in its training script).
    """
    if kl_coef > 0:
        return list(samples)
    return [sample for sample in samples if sample.advantage != 0]


def response_tokens(samples: Sequence[Sample]) -> int:
    """Response tokens of ``samples`` (the positions the loss averages over)."""
    return sum(len(sample.response_ids) for sample in samples)


# ---------------------------------------------------------------------------------------------------
# Token-level loss terms (torch). Every tensor below has one entry per token position, any shape
# (usually (B, T)); masks are 1 on response tokens and 0 elsewhere.


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    *,
    clip_low: float = CLIP_LOW,
    clip_high: float = CLIP_HIGH,
    dual_clip: float = DUAL_CLIP,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's pessimistic clipped surrogate per token, with an asymmetric clip range (DAPO's clip-higher)
    and dual clipping of negative advantages (Ye et al. 2020, arXiv:1912.09729), as verl computes it
    (ref verl/trainer/ppo/core_algos.py:412-427).

    Args:
        logprobs: current log-probabilities of the sampled tokens.
        old_logprobs: log-probabilities under the old policy (no gradient flows through them).
        advantages: advantage of each token (broadcastable to ``logprobs``).
        clip_low, clip_high: the ratio is clipped to ``[1 - clip_low, 1 + clip_high]``.
        dual_clip: ``c > 1``: where the advantage is negative the loss is at most ``-A c``, so a token
            whose ratio has run far above ``c`` cannot dominate the step; 0 turns it off.

    Returns:
        ``(loss, clipped, dual_clipped)``: ``max(-A r, -A clip(r))`` per token, capped at ``-A c`` where
        ``A < 0``; a bool tensor that is true where the clipped term wins; and one that is true where
        the dual-clip cap wins. Either way those tokens get no gradient; the shares are the clip fractions.
    """
    ratio = torch.exp(logprobs - old_logprobs.detach())
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    dual_clipped = torch.zeros_like(loss, dtype=torch.bool)
    if dual_clip:
        cap = -advantages * dual_clip  # no gradient: the advantages are data
        dual_clipped = (advantages < 0) & (loss > cap)
        loss = torch.where(dual_clipped, cap, loss)
    return loss, clipped > unclipped, dual_clipped


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Low-variance KL(policy || reference) estimate per token: ``exp(d) - d - 1`` with ``d = ref - logp``.

    Non-negative, zero where the two log-probabilities agree, and unbiased for the sampled tokens
    (Schulman's k3). The log-ratio is clamped to ±20 and the estimate to at most 10, as in verl.
    """
    log_ratio = torch.clamp(ref_logprobs.detach() - logprobs, -KL_LOG_RATIO_BOUND, KL_LOG_RATIO_BOUND)
    # expm1(d) - d, not exp(d) - d - 1: the latter cancels to a tiny negative number for |d| ~ 1e-10
    # (found by hypothesis); expm1 is accurate there and never rounds below d, so the estimate stays >= 0.
    return torch.clamp(torch.expm1(log_ratio) - log_ratio, max=KL_VALUE_BOUND)


def token_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over the positions where ``mask`` is 1 (a scalar)."""
    return (values * mask).sum()


def token_mean(values: torch.Tensor, mask: torch.Tensor, num_tokens: float | None = None) -> torch.Tensor:
    """Mean of ``values`` over masked tokens of the whole batch (not per sequence), as a scalar.

    Args:
        values, mask: same shape; ``mask`` is 1 on response tokens.
        num_tokens: the denominator; pass the token count of the whole optimizer step when this batch
            is one micro-batch of it, so the summed micro-batch losses equal the step's token-mean.
    """
    if num_tokens is None:
        return token_sum(values, mask) / torch.clamp(mask.sum(), min=1.0)
    return token_sum(values, mask) / max(float(num_tokens), 1.0)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax over the last dimension: shape (..., V) -> (...)."""
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


def grpo_token_terms(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    ref_logprobs: torch.Tensor | None = None,
    *,
    clip_low: float = CLIP_LOW,
    clip_high: float = CLIP_HIGH,
    dual_clip: float = DUAL_CLIP,
    kl_coef: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Per-token GRPO loss and its parts: ``loss = pg_loss + kl_coef * kl``.

    Returns:
        ``loss``, ``pg_loss``, ``clip_frac`` (1.0 where clipped), ``dual_clip_frac`` (1.0 where the
        dual-clip cap acts) and, when ``kl_coef > 0``, ``kl``; each with the shape of ``logprobs``, to be
        reduced with :func:`token_mean`.

    Raises:
        ValueError: ``kl_coef > 0`` without ``ref_logprobs``.
    """
    pg_loss, clipped, dual_clipped = clipped_policy_loss(
        logprobs, old_logprobs, advantages, clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip
    )
    terms = {"loss": pg_loss, "pg_loss": pg_loss, "clip_frac": clipped.to(logprobs.dtype),
             "dual_clip_frac": dual_clipped.to(logprobs.dtype)}
    if kl_coef > 0:
        if ref_logprobs is None:
            raise ValueError("kl_coef > 0 needs ref_logprobs from a frozen reference model (or set kl_coef=0).")
        kl = k3_kl(logprobs, ref_logprobs)
        terms["kl"] = kl
        terms["loss"] = pg_loss + kl_coef * kl
    return terms
