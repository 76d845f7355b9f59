"""A learner for Hugging Face causal LMs: GRPO and SFT steps on token-level samples.

Works with ``transformers.AutoModelForCausalLM`` models and any module with the same forward
signature (``model(input_ids=..., attention_mask=...).logits``). One call of :meth:`Learner.grpo_step`
or :meth:`Learner.sft_step` is one optimizer step: the samples are packed into micro-batches by a
token budget, gradients are accumulated so that the step's loss is the token-mean over all response
tokens of the step however it is split, then clipped, and AdamW steps with linear warm-up. A GRPO step
forwards only the samples that can change its gradient (:func:`agents.training.grpo.samples_to_forward`).

    learner = Learner(model, LearnerConfig(kl_coef=0.001), reference=frozen_copy)
    metrics = learner.grpo_step(grpo_samples(trajectories))
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Literal, overload

import torch
import torch.nn.functional as F

from agents.models import compute_precision
from agents.training.batching import Batch, collate, pack_micro_batches, pad_micro_batches
from agents.training.grpo import (
    Sample,
    entropy_from_logits,
    grpo_token_terms,
    response_tokens,
    samples_to_forward,
    token_sum,
)
from agents.training.learner_config import LearnerConfig, LoraSettings
from agents.training.model_protocols import SwitchesAdapters, WrapsBaseModel
from atommem_env.errors import ConfigError, DependencyError

__all__ = ["Learner", "LearnerConfig", "LoraSettings", "apply_lora", "schedule_factor", "token_logprobs"]

log = logging.getLogger(__name__)

Objective = Literal["grpo", "sft"]
# Measured, not optimized: token-means over the tokens forwarded (a skipped sample has no entropy to
# measure), where the loss terms average over all response tokens of the step.
MEASURED = ("entropy", "sampler_abs_log_ratio")


class Learner:
    """Owns the policy model, its optimizer and schedule, and (for KL) a frozen reference.

    Args:
        model: a causal LM; with ``config.lora`` it is wrapped by peft and only adapters train.
        config: validated settings (paper defaults).
        reference: a frozen copy of the initial policy, used only when ``config.kl_coef > 0``. With
            LoRA it may be omitted: the model with its adapters disabled is the reference.

    Raises:
        ConfigError: ``kl_coef > 0`` and no way to compute reference logprobs.
        DependencyError: LoRA is configured and peft is not installed.
    """

    def __init__(self, model: torch.nn.Module, config: LearnerConfig | None = None, *,
                 reference: torch.nn.Module | None = None) -> None:
        self.config = config or LearnerConfig()
        self.model = apply_lora(model, self.config.lora) if self.config.lora is not None else model
        self.model.train()
        self.reference = self._frozen_reference(reference)
        self.device = next(self.model.parameters()).device
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.trainable, lr=self.config.lr, betas=self.config.betas, weight_decay=self.config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule_factor(
            self.config.warmup_steps, self.config.decay_steps, self.config.min_lr_ratio))
        self.steps = 0

    def _frozen_reference(self, reference: torch.nn.Module | None) -> torch.nn.Module | None:
        if self.config.kl_coef == 0:
            return None  # never needed, never run
        if reference is None and self.config.lora is None:
            raise ConfigError(
                f"kl_coef={self.config.kl_coef} needs a frozen reference model. Pass reference= (e.g. a second "
                "from_pretrained of the same checkpoint, or copy.deepcopy(model) before training), enable LoRA "
                "(the base model with adapters disabled is then the reference), or set kl_coef=0."
            )
        if reference is not None:
            reference.eval()
            reference.requires_grad_(False)
        return reference

    def grpo_step(self, samples: Sequence[Sample]) -> dict[str, float]:
        """One GRPO optimizer step on turn samples (each with sampling logprobs and an advantage).

        Only :func:`~agents.training.grpo.samples_to_forward` are forwarded; the loss stays the
        token-mean over every response token of ``samples``. ``samples`` may be empty, or carry no
        signal: the gradient is then 0 and the optimizer still steps (as on any zero gradient).

        Returns:
            ``loss``, ``pg_loss``, ``clip_frac``, ``dual_clip_frac`` (token-means over the step), ``kl``
            when ``kl_coef > 0``; ``entropy`` and ``sampler_abs_log_ratio`` (the mean ``|log p_learner -
            log p_sampler|`` before the update: 0 when sampler and learner compute alike), means over
            the forwarded tokens (NaN when none was); ``grad_norm`` (before clipping), ``lr`` (used by
            this step), ``tokens_per_s`` (prompt and response tokens through forward and backward per
            second), ``response_tokens`` (of the step), ``forwarded_tokens``, ``skipped_samples`` (not
            forwarded) and ``micro_batches``.
        """
        forwarded = samples_to_forward(samples, kl_coef=self.config.kl_coef)
        metrics = self._step(forwarded, "grpo", step_tokens=response_tokens(samples))
        metrics.update(response_tokens=float(response_tokens(samples)),
                       skipped_samples=float(len(samples) - len(forwarded)))
        return metrics

    def sft_step(self, samples: Sequence[Sample]) -> dict[str, float]:
        """One supervised step: token-mean negative log-likelihood of the response tokens.

        Returns:
            ``loss``, ``entropy``, ``grad_norm``, ``lr``, ``tokens_per_s``, ``response_tokens``,
            ``micro_batches`` (as in :meth:`grpo_step`).
        """
        metrics = self._step(samples, "sft")
        metrics["response_tokens"] = metrics.pop("forwarded_tokens")
        return metrics

    def _step(self, samples: Sequence[Sample], objective: Objective, *,
              step_tokens: int | None = None) -> dict[str, float]:
        started = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        metrics = self.compute_gradients(samples, objective, step_tokens=step_tokens)
        metrics.update(self.apply_gradients())
        elapsed = max(time.perf_counter() - started, 1e-9)
        metrics["tokens_per_s"] = sum(len(s) for s in samples) / elapsed
        return metrics

    def apply_gradients(self) -> dict[str, float]:
        """Clip the accumulated gradients, step the optimizer and the schedule.

        Returns:
            ``grad_norm`` (before clipping) and ``lr`` (the rate this step used).
        """
        lr = float(self.scheduler.get_last_lr()[0])
        for p in self.trainable:
            if p.grad is None:  # nothing was forwarded: a zero gradient, so AdamW steps as on any other
                p.grad = torch.zeros_like(p)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        if hasattr(grad_norm, "full_tensor"):  # sharded (FSDP) gradients: the norm is a DTensor over the ranks
            grad_norm = grad_norm.full_tensor()
        self.optimizer.step()
        self.scheduler.step()
        self.steps += 1
        return {"grad_norm": float(grad_norm), "lr": lr}

    def compute_gradients(self, samples: Sequence[Sample], objective: Objective, *, step_tokens: int | None = None,
                          forwarded_tokens: int | None = None, passes: int | None = None) -> dict[str, float]:
        """Forward ``samples`` and add the gradient of the step's token-mean loss to ``.grad``; no optimizer step.

        Each micro-batch's loss is its token *sum* divided by the response tokens of the whole step,
        so the accumulated gradient is that of one token-mean over the step, whatever the split.

        Args:
            step_tokens: the response tokens of the whole step, the loss's denominator: more than those
                of ``samples`` when they are one learner's shard of it (data parallel: the shards'
                gradients and metrics then *sum* to the step's), or when samples that carry no signal
                were left out (:func:`~agents.training.grpo.samples_to_forward`). Default: the tokens
                of ``samples``.
            forwarded_tokens: the response tokens forwarded in the whole step (data parallel), the
                denominator of the ``MEASURED`` means. Default: the tokens of ``samples``.
            passes: run exactly this many forward/backward passes, the ones beyond this shard's
                micro-batches on zero-weight fillers (sharded ranks, whose passes hold collectives,
                must all run the same number). Default: one pass per micro-batch.

        Returns:
            The step's token-mean loss terms and the ``MEASURED`` means (NaN when the step forwarded
            nothing), ``forwarded_tokens`` (of these samples) and ``micro_batches`` (real ones, not fillers).
        """
        _check_samples(samples, objective)
        own_tokens = response_tokens(samples)
        step_tokens = own_tokens if step_tokens is None else step_tokens
        forwarded_tokens = own_tokens if forwarded_tokens is None else forwarded_tokens
        if not own_tokens <= forwarded_tokens <= step_tokens:
            raise ValueError(f"Need these samples' {own_tokens} response tokens <= forwarded_tokens={forwarded_tokens} "
                             f"<= step_tokens={step_tokens}.")
        micro_batches = pack_micro_batches(samples, self.config.micro_batch_tokens)
        planned = pad_micro_batches(micro_batches, len(micro_batches) if passes is None else passes,
                                    self.config.pad_token_id)
        sums = dict.fromkeys(self._term_names(objective), 0.0)
        denominator = max(step_tokens, 1)  # 0 only when nothing is forwarded but zero-weight fillers
        prompt_weight = self.config.prompt_loss_weight if objective == "sft" else 0.0
        for chunk, weight in planned:
            batch = collate(chunk, self.config.pad_token_id).to(self.device)
            terms = self._token_terms(batch, objective, whole_sequence=prompt_weight > 0)
            objective_sum = token_sum(terms["loss"], batch.response_mask)
            if prompt_weight:
                objective_sum = objective_sum + prompt_weight * token_sum(terms["prompt_loss"], batch.prompt_mask)
            (objective_sum / denominator * weight).backward()  # x * 1.0 is exact
            for name, values in terms.items():
                mask = batch.prompt_mask if name == "prompt_loss" else batch.response_mask
                sums[name] += weight * float(token_sum(values.detach(), mask))
        metrics = {name: _mean(total, forwarded_tokens if name in MEASURED else denominator)
                   for name, total in sums.items()}
        if prompt_weight:
            metrics["prompt_loss"] = _mean(sums["prompt_loss"], sum(predicted_prompt_tokens(s) for s in samples))
        metrics.update(forwarded_tokens=float(own_tokens), micro_batches=float(len(micro_batches)))
        return metrics

    def _term_names(self, objective: Objective) -> tuple[str, ...]:
        """The per-token terms :meth:`_token_terms` returns (every step reports each, forwarded or not)."""
        if objective == "sft":
            return ("loss", "entropy", "prompt_loss") if self.config.prompt_loss_weight else ("loss", "entropy")
        names = ("loss", "pg_loss", "clip_frac", "dual_clip_frac", "entropy", "sampler_abs_log_ratio")
        return names + ("kl",) if self.config.kl_coef > 0 else names

    def _token_terms(self, batch: Batch, objective: Objective, *,
                     whole_sequence: bool = False) -> dict[str, torch.Tensor]:
        """Per-token loss terms of one micro-batch, each (B, T); ``loss`` carries the gradient (with
        ``whole_sequence``, SFT's ``prompt_loss`` too, read on the prompt tokens)."""
        with compute_precision(self.device, self.config.bf16):
            logprobs, entropy = token_logprobs(
                self.model, batch, temperature=self.config.temperature, with_entropy=True,
                whole_sequence=whole_sequence,
            )
        if objective == "sft":
            terms = {"loss": -logprobs, "entropy": entropy}
            return {**terms, "prompt_loss": -logprobs} if whole_sequence else terms
        # verl recomputes the old logprobs with the actor before updating it (ref ray_trainer.py:1155-1163).
        # This learner makes one optimizer step per set of samples (SPEC §8: one update per step), so the
        # policy before the update is the one this very forward pass runs: its logprobs, detached, are what
        # a separate pass would recompute, bit for bit and at no extra cost.
        old = logprobs.detach() if self.config.recompute_old_logprobs else batch.sampler_logprobs
        terms = grpo_token_terms(
            logprobs,
            old,
            batch.advantages,
            self._reference_logprobs(batch) if self.config.kl_coef > 0 else None,
            clip_low=self.config.clip_low,
            clip_high=self.config.clip_high,
            dual_clip=self.config.dual_clip,
            kl_coef=self.config.kl_coef,
        )
        terms["entropy"] = entropy
        # The sampler/learner mismatch before the update, whatever the old logprobs are.
        terms["sampler_abs_log_ratio"] = (logprobs.detach() - batch.sampler_logprobs).abs()
        return terms

    @torch.no_grad()
    def _reference_logprobs(self, batch: Batch) -> torch.Tensor:
        with compute_precision(self.device, self.config.bf16):
            if self.reference is not None:
                logprobs, _ = token_logprobs(self.reference, batch, temperature=self.config.temperature)
                return logprobs
            if not isinstance(self.model, SwitchesAdapters):  # _frozen_reference makes sure it is
                raise ConfigError("kl_coef > 0 needs a reference model, or LoRA adapters that can be disabled.")
            with self.model.disable_adapter():  # LoRA: the base weights are the initial policy
                logprobs, _ = token_logprobs(self.model, batch, temperature=self.config.temperature)
                return logprobs


def _check_samples(samples: Sequence[Sample], objective: Objective) -> None:
    if objective not in ("grpo", "sft"):
        raise ValueError(f"Unknown objective {objective!r}; use 'grpo' or 'sft'.")
    if objective == "sft" and not samples:
        raise ValueError("A supervised step needs at least one sample.")
    missing = sum(1 for s in samples if s.logprobs is None)
    if objective == "grpo" and missing:
        raise ValueError(
            f"{missing} of {len(samples)} samples have no sampling logprobs; GRPO needs the logprobs the "
            "policy returned with each response (use sft_step for supervised data)."
        )


def predicted_prompt_tokens(sample: Sample) -> int:
    """The prompt tokens of ``sample`` that a prompt loss scores: all but the first."""
    return max(len(sample.prompt_ids) - 1, 0)


def _mean(total: float, tokens: int) -> float:
    """``total / tokens``; NaN for a mean over no token (nothing was measured)."""
    return total / tokens if tokens else float("nan")


@overload
def token_logprobs(
    model: torch.nn.Module, batch: Batch, *, temperature: float = 1.0, with_entropy: Literal[True],
    whole_sequence: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]: ...


@overload
def token_logprobs(
    model: torch.nn.Module, batch: Batch, *, temperature: float = 1.0, with_entropy: bool = False,
    whole_sequence: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]: ...


def token_logprobs(
    model: torch.nn.Module, batch: Batch, *, temperature: float = 1.0, with_entropy: bool = False,
    whole_sequence: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probability of each token given the tokens before it, and optionally the entropy there.

    Logits are computed only from the first position that can precede a response token (through
    ``logits_to_keep`` where the model accepts it), since the vocabulary projection of a long prompt
    dominates memory; ``whole_sequence`` computes them for every position (for a loss on prompts).

    Returns:
        ``(logprobs, entropy)``, each (B, T) float32 and aligned with ``batch.input_ids``: entry ``t``
        is about token ``t``; entry 0, and without ``whole_sequence`` every entry before
        ``batch.first_response``, is 0. ``entropy`` (no gradient) is ``None`` unless asked for, and 0
        before ``batch.first_response`` either way (no response token is scored there).
    """
    width = batch.input_ids.shape[1]
    # The first position whose next token is scored: one that may precede a response token, or the first.
    start = 0 if whole_sequence else batch.first_response - 1
    kept = width - start
    kwargs = _forward_options(model, kept)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kwargs).logits
    # Models without logits_to_keep return every position; the last `kept` are the same either way.
    logits = logits[:, -kept:-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    targets = batch.input_ids[:, start + 1:].unsqueeze(-1)
    logprobs = logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    entropy = None
    if with_entropy:  # only where a response token can be: the entropy of prompt positions is never read
        first = batch.first_response - 1
        with torch.no_grad():
            entropy = F.pad(entropy_from_logits(logits[:, first - start:]), (first + 1, 0))
    return F.pad(logprobs, (start + 1, 0)), entropy


def _forward_options(model: torch.nn.Module, kept: int) -> dict[str, object]:
    """``logits_to_keep`` and ``use_cache=False`` for models whose forward accepts them."""
    base = model.get_base_model() if isinstance(model, WrapsBaseModel) else model  # peft forwards **kwargs
    accepted = inspect.signature(base.forward).parameters
    options: dict[str, object] = {}
    if "logits_to_keep" in accepted:
        options["logits_to_keep"] = kept
    if "use_cache" in accepted:
        options["use_cache"] = False  # training keeps no KV cache
    return options


def schedule_factor(warmup_steps: int, decay_steps: int = 0, min_ratio: float = 0.1) -> Callable[[int], float]:
    """LR multiplier per optimizer step: linear from ``1/warmup_steps`` up to 1, then constant, or with
    ``decay_steps`` a cosine from 1 down to ``min_ratio`` over that many steps, then ``min_ratio``.

    The first step already gets ``lr / warmup_steps`` (not 0, as a ``step / warmup`` ramp would give),
    so no step of the budget is spent without an update.
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if not decay_steps:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / decay_steps)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def apply_lora(model: torch.nn.Module, settings: LoraSettings) -> torch.nn.Module:
    """Wrap ``model`` with peft LoRA adapters; the base weights are frozen.

    Raises:
        DependencyError: peft is not installed.
    """
    try:
        import peft
    except ImportError as error:
        raise DependencyError(
            "LoRA needs peft, which is not installed. Install it with pip install 'atommem[train]' "
            "(or pip install peft), or set LearnerConfig(lora=None) to train all weights."
        ) from error
    target = settings.target_modules if isinstance(settings.target_modules, str) else list(settings.target_modules)
    config = peft.LoraConfig(
        # peft annotates lora_alpha as int, but only divides by it: a float alpha (2.0 * r) is fine.
        r=settings.r, lora_alpha=settings.alpha,  # type: ignore[arg-type]
        lora_dropout=settings.dropout, target_modules=target,
        task_type="CAUSAL_LM",
    )
    return peft.get_peft_model(model, config)
