"""The learner's settings: one validated, frozen dataclass (paper values as defaults, SPEC §8)."""

from __future__ import annotations

from dataclasses import dataclass

from agents.training.grpo import CLIP_HIGH, CLIP_LOW, DUAL_CLIP
from atommem_env.errors import ConfigError


@dataclass(frozen=True)
class LoraSettings:
    """Low-rank adapters through peft (``peft.LoraConfig``); only the adapters are trained.

    Attributes:
        r: adapter rank.
        alpha: scaling numerator (the update is scaled by ``alpha / r``).
        dropout: dropout on the adapter input.
        target_modules: module names to adapt, or ``"all-linear"`` for every linear layer but the
            output head.
    """

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: str | tuple[str, ...] = "all-linear"

    def problems(self) -> list[str]:
        """What is wrong with these settings, one line per problem (empty when valid)."""
        checks = [
            (self.r >= 1, f"lora.r={self.r} must be at least 1 (try 8 or 16)."),
            (self.alpha > 0, f"lora.alpha={self.alpha} must be positive (commonly 2 * r)."),
            (0.0 <= self.dropout < 1.0, f"lora.dropout={self.dropout} must be in [0, 1)."),
            (bool(self.target_modules),
             'lora.target_modules is empty; name modules (e.g. ("q_proj", "v_proj")) or use "all-linear".'),
        ]
        return [message for ok, message in checks if not ok]


@dataclass(frozen=True)
class LearnerConfig:
    """How the learner optimizes; raises :class:`ConfigError` on construction when a value is invalid.

    Attributes:
        lr: AdamW learning rate after warm-up (paper: 1e-6).
        warmup_steps: optimizer steps of linear warm-up, then constant (paper: 20; 0 disables).
        weight_decay: AdamW weight decay (0.01, verl's actor default).
        betas: AdamW betas.
        max_grad_norm: global gradient-norm clip.
        clip_low, clip_high: policy-ratio clip range ``[1 - clip_low, 1 + clip_high]`` (paper: 0.2 / 0.28).
        dual_clip: the loss of a token with a negative advantage is at most ``-A * dual_clip`` (the
            reference: 3.0); 0 turns dual clipping off.
        recompute_old_logprobs: the old logprobs of the ratio are the learner's own, from the forward
            pass before the update (verl's recomputation), instead of the sampler's. Use it when the
            sampler computes differently from the learner (another engine, another precision).
        kl_coef: weight of the k3 KL penalty to the reference (paper: 0.001); 0 never runs a reference.
        micro_batch_tokens: padded tokens (rows x longest row) per forward/backward pass; gradients of
            the micro-batches of one step are accumulated.
        temperature: the sampling temperature; logits are divided by it so that logprobs match the
            sampler's (paper: 1.0).
        pad_token_id: id used for right padding (masked out, so any valid id works).
        bf16: bfloat16 autocast on CUDA (ignored on CPU, where it is slow and not needed). The sampler
            must compute in the same precision (see ``GRPOArgs.precision``).
        lora: train low-rank adapters instead of all weights (needs peft).
        decay_steps: after warm-up, the rate follows a cosine from ``lr`` down to ``lr * min_lr_ratio``
            over this many steps and stays there; 0 keeps it constant (the paper's GRPO).
        min_lr_ratio: the floor of the cosine decay, as a share of ``lr``.
        prompt_loss_weight: SFT only: each prompt token's negative log-likelihood counts this many times
            a response token's in the loss (0: responses only, the recipe). A randomly initialized model
            learns to copy from the prompts' repetitions (docs/TRAINING.md); the loss a step reports
            stays the response tokens' mean.
    """

    lr: float = 1e-6
    warmup_steps: int = 20
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0
    clip_low: float = CLIP_LOW
    clip_high: float = CLIP_HIGH
    dual_clip: float = DUAL_CLIP
    recompute_old_logprobs: bool = False
    kl_coef: float = 0.001
    micro_batch_tokens: int = 16_384
    temperature: float = 1.0
    pad_token_id: int = 0
    bf16: bool = True
    lora: LoraSettings | None = None
    decay_steps: int = 0
    min_lr_ratio: float = 0.1
    prompt_loss_weight: float = 0.0

    def __post_init__(self) -> None:
        found = self.problems()
        if found:
            raise ConfigError("Invalid LearnerConfig:\n  " + "\n  ".join(found))

    def problems(self) -> list[str]:
        """What is wrong with this configuration, one line per problem (empty when valid)."""
        checks = [
            (self.lr > 0, f"lr={self.lr} must be positive (the paper uses 1e-6)."),
            (self.warmup_steps >= 0, f"warmup_steps={self.warmup_steps} must be >= 0 (0 disables warm-up)."),
            (self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0."),
            (len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas),
             f"betas={self.betas} must be two numbers in [0, 1), e.g. (0.9, 0.999)."),
            (self.max_grad_norm > 0, f"max_grad_norm={self.max_grad_norm} must be positive (e.g. 1.0)."),
            (0.0 < self.clip_low < 1.0,
             f"clip_low={self.clip_low} must be in (0, 1): the ratio floor is 1 - clip_low (paper: 0.2)."),
            (self.clip_high > 0,
             f"clip_high={self.clip_high} must be positive: the ratio cap is 1 + clip_high (paper: 0.28)."),
            (self.dual_clip == 0 or self.dual_clip > 1,
             f"dual_clip={self.dual_clip} must be above 1 (the loss of A < 0 is capped at -A * dual_clip; the "
             "reference: 3.0), or 0 to turn dual clipping off."),
            (self.kl_coef >= 0, f"kl_coef={self.kl_coef} must be >= 0 (0 turns the KL penalty and the reference off)."),
            (self.micro_batch_tokens >= 1,
             f"micro_batch_tokens={self.micro_batch_tokens} must be at least 1 (e.g. 16384)."),
            (self.temperature > 0,
             f"temperature={self.temperature} must be positive: use the sampler's temperature (paper: 1.0)."),
            (self.pad_token_id >= 0, f"pad_token_id={self.pad_token_id} must be a valid token id (>= 0)."),
            (self.decay_steps >= 0, f"decay_steps={self.decay_steps} must be >= 0 (0 keeps the rate constant)."),
            (0.0 <= self.min_lr_ratio <= 1.0, f"min_lr_ratio={self.min_lr_ratio} must be in [0, 1]."),
            (self.prompt_loss_weight >= 0,
             f"prompt_loss_weight={self.prompt_loss_weight} must be >= 0 (0: the loss is on responses only)."),
        ]
        found = [message for ok, message in checks if not ok]
        if self.lora is not None:
            found.extend(self.lora.problems())
        return found
