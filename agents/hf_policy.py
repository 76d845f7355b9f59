"""A local Hugging Face causal LM as a batched policy (token ids and sampling logprobs included).

    policy = TransformersPolicy("smollm2", max_new_tokens=256)          # offline, CPU is fine
    policy = TransformersPolicy("Qwen/Qwen3-8B", device="cuda")           # with network and a GPU

Each observation becomes the chat of :func:`atommem_env.as_messages` rendered with the tokenizer's chat
template (with the observation's tools, if it offers any: :mod:`agents.chat`). Prompts of one ``act``
call are sorted by length and decoded in batches of ``batch_size`` (left-padded), with a plain sampling
loop over the KV cache rather than ``generate``: the loop records each sampled token's log-probability as
it goes, where ``generate`` would have to keep the logits of every step (batch × steps × vocabulary
floats) to give the same.

``Completion.logprobs`` are ``log_softmax(logits / temperature)`` at the sampled token (raw logits when
greedy): the distribution the learner recomputes, without the top-p cut. ``response_ids`` include the
end-of-turn token when the model produced it, so training teaches the model to stop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from agents.base import Completion
from agents.chat import chat_prompt_ids, tool_response
from agents.models import compute_precision, load_causal_lm
from atommem_env.errors import ConfigError

logger = logging.getLogger(__name__)


class TransformersPolicy:
    """Batched generation with a transformers model (see the module docstring).

    Args:
        model: ``"smollm2"`` (offline SmolLM2-135M-Instruct), a hub name or a local folder.
        temperature: 0 decodes greedily; the paper samples at 1.0.
        top_p: nucleus mass kept when sampling (the paper: 0.99).
        max_new_tokens: response budget per turn.
        batch_size: prompts decoded together (memory grows with batch × prompt length).
        max_context: prompt + response tokens the model may see; longer prompts lose their middle
            (the system prompt and the end of the user message stay). ``None``: the model's own limit.
        seed: seeds the sampler (a policy built with the same seed samples the same responses).
        device, dtype: see :func:`agents.models.load_causal_lm`.
        name: the policy name in results tables (default ``hf:<model>``).
        cache_size: greedy responses kept for repeated prompts (see :meth:`respond`); 0 keeps none.

    Attributes:
        deterministic: True for greedy decoding with ``batch_size=1``: each response is then a function
            of its observation alone (see ``_configure``), which ``experiments/fidelity.py`` relies on.
    """

    def __init__(
        self,
        model: str = "smollm2",
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        batch_size: int = 8,
        max_context: int | None = None,
        seed: int = 0,
        device: str | None = None,
        dtype: str | None = None,
        name: str | None = None,
        cache_size: int = 256,
    ) -> None:
        _check_sampling(temperature, top_p, max_new_tokens, batch_size, cache_size)
        lm, tokenizer = load_causal_lm(model, device, dtype)
        self._configure(lm, tokenizer, name or f"hf:{model}", temperature=temperature, top_p=top_p,
                        max_new_tokens=max_new_tokens, batch_size=batch_size, max_context=max_context, seed=seed,
                        cache_size=cache_size)

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, *, name: str = "hf:in-memory", temperature: float = 1.0,
                   top_p: float = 1.0, max_new_tokens: int = 512, batch_size: int = 8,
                   max_context: int | None = None, seed: int = 0, cache_size: int = 256,
                   bf16: bool = False) -> TransformersPolicy:
        """A policy around a model already in memory (e.g. the one a learner trains, shared, not copied).

        ``bf16`` decodes under bfloat16 autocast on CUDA (:func:`agents.models.compute_precision`), the
        precision of a GRPO learner with ``bf16``, so sampler and learner compute alike. Call
        :meth:`weights_changed` after each update of the shared weights.
        """
        _check_sampling(temperature, top_p, max_new_tokens, batch_size, cache_size)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        policy = cls.__new__(cls)
        policy._configure(model, tokenizer, name, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                          batch_size=batch_size, max_context=max_context, seed=seed, cache_size=cache_size, bf16=bf16)
        return policy

    def _configure(self, model: Any, tokenizer: Any, name: str, *, temperature: float, top_p: float,
                   max_new_tokens: int, batch_size: int, max_context: int | None, seed: int, cache_size: int,
                   bf16: bool = False) -> None:
        import torch

        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device
        limit = max_context or getattr(model.config, "max_position_embeddings", None) or 4096
        if limit <= max_new_tokens + 16:
            raise ConfigError(f"max_context={limit} leaves no room for a prompt with max_new_tokens={max_new_tokens}.")
        self.max_prompt_tokens = limit - max_new_tokens
        self.temperature, self.top_p = temperature, top_p
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.stop_ids = _stop_ids(tokenizer, model)
        self.name = name
        # Greedy decoding of one prompt at a time is a function of the prompt (the same operations on the
        # same tokens, bit for bit), and the prompt one of the observation, so agents.training.fidelity may
        # reuse a recorded response wherever the observation is unchanged. In a padded batch a prompt's
        # logits can change in their last bits with its neighbours' lengths (other matrix shapes, other
        # summation orders) and flip a near tie, so that is not claimed. (For fixed weights: see
        # weights_changed.)
        self.deterministic = temperature == 0 and batch_size == 1
        self.truncated_prompts = 0
        self.cache_size = cache_size
        self.bf16 = bf16  # bfloat16 autocast on CUDA (see from_model)
        self._cache: dict[tuple[int, ...], tuple[list[int], list[float]]] = {}

    def act(self, observations: Sequence[dict[str, Any]]) -> list[Completion]:
        """One completion per observation, in input order (with its tool calls where the observation
        offers tools: :func:`agents.chat.tool_response`)."""
        prompts = [tuple(self.prompt_ids(obs)) for obs in observations]
        responses = self.respond(prompts)
        completions = []
        for obs, prompt, (ids, lps) in zip(observations, prompts, responses, strict=True):
            if obs.get("tools"):
                text, calls = tool_response(self.tokenizer, ids)
            else:
                text, calls = self.tokenizer.decode(ids, skip_special_tokens=True), None
            completions.append(Completion(text, prompt, tuple(ids), tuple(lps), calls))
        return completions

    def respond(self, prompts: list[tuple[int, ...]]) -> list[tuple[list[int], list[float]]]:
        """(response ids, logprobs) per prompt; greedy decoding reuses responses to repeated prompts.

        A model that produces no valid action sees the same prompt again (the env keeps its chunk),
        so greedy runs repeat prompts often; the answer would be the same, and decoding it again on a
        CPU costs the better part of a minute at 5K prompt tokens.
        """
        if self.temperature > 0:  # sampling: every prompt gets its own draw, duplicates included
            order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
            drawn = self._generate_sorted([prompts[i] for i in order])
            return [response for _, response in sorted(zip(order, drawn, strict=True))]
        known = {p: self._cache[p] for p in prompts if p in self._cache}
        missing = sorted(set(prompts) - known.keys(), key=len)
        for prompt, response in zip(missing, self._generate_sorted(missing), strict=True):
            known[prompt] = response
            self._remember(prompt, response)
        return [known[p] for p in prompts]

    def _generate_sorted(self, prompts: list[tuple[int, ...]]) -> list[tuple[list[int], list[float]]]:
        """Batches of ``batch_size`` neighbours in length order, so little of a batch is padding."""
        out: list[tuple[list[int], list[float]]] = []
        for start in range(0, len(prompts), self.batch_size):
            out += self.generate([list(p) for p in prompts[start : start + self.batch_size]])
        return out

    def weights_changed(self) -> None:
        """Forget cached greedy responses; call it after changing ``self.model``'s weights."""
        self._cache.clear()

    def _remember(self, prompt: tuple[int, ...], response: tuple[list[int], list[float]]) -> None:
        self._cache[prompt] = response
        while len(self._cache) > self.cache_size:
            self._cache.pop(next(iter(self._cache)))  # oldest first (dicts keep insertion order)

    def prompt_ids(self, observation: dict[str, Any]) -> list[int]:
        """The chat-templated prompt of one observation, middle-truncated to fit the context."""
        ids, cut = chat_prompt_ids(self.tokenizer, observation, self.max_prompt_tokens)
        self.truncated_prompts += cut
        if cut and self.truncated_prompts == 1:
            logger.warning(
                "%s: a prompt exceeds max_context - max_new_tokens = %d tokens; its middle is cut "
                "(counted in policy.truncated_prompts).", self.name, self.max_prompt_tokens,
            )
        return ids

    def generate(self, prompts: list[list[int]]) -> list[tuple[list[int], list[float]]]:
        """(response ids, logprobs) for each prompt, decoded together (left padding)."""
        import torch

        with torch.inference_mode(), compute_precision(self.device, self.bf16):
            return _decode(self, prompts)


def _check_sampling(temperature: float, top_p: float, max_new_tokens: int, batch_size: int, cache_size: int) -> None:
    if temperature < 0 or not 0 < top_p <= 1 or max_new_tokens < 1 or batch_size < 1 or cache_size < 0:
        raise ConfigError(
            f"TransformersPolicy temperature={temperature}, top_p={top_p}, max_new_tokens={max_new_tokens}, "
            f"batch_size={batch_size}, cache_size={cache_size}: need temperature >= 0, 0 < top_p <= 1, "
            "max_new_tokens and batch_size >= 1, cache_size >= 0."
        )


def _decode(policy: TransformersPolicy, prompts: list[list[int]]) -> list[tuple[list[int], list[float]]]:
    import torch

    width = max(len(p) for p in prompts)
    pad = policy.tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=policy.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=policy.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    # Only the last position's logits are sampled from: computing them for every prompt position
    # would cost a (batch x prompt x vocab) output, 0.6 GB and a fifth of the prefill for SmolLM2's
    # 49K vocabulary at 8 x 400 tokens.
    out = policy.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                       logits_to_keep=1)
    stop = torch.tensor(sorted(policy.stop_ids), device=policy.device)
    tokens = torch.full((len(prompts), policy.max_new_tokens), pad, dtype=torch.long)
    logprobs = torch.zeros((len(prompts), policy.max_new_tokens))
    rows = torch.arange(len(prompts))  # the prompt of each row still decoding
    for step in range(policy.max_new_tokens):
        token, logprob = _sample(policy, out.logits[:, -1, :].float())
        tokens[rows, step], logprobs[rows, step] = token.cpu(), logprob.cpu()
        live = ~torch.isin(token, stop)
        if step == policy.max_new_tokens - 1 or not bool(live.any()):
            break
        if not bool(live.all()):
            # Finished rows leave the batch (their cache rows too): a decoding step's cost grows with
            # its rows on a CPU, and a batch would otherwise decode until its longest response ends.
            keep = live.nonzero()[:, 0]
            rows, token, mask, positions = rows[keep.cpu()], token[keep], mask[keep], positions[keep]
            _cache_of(out).batch_select_indices(keep)  # in place: the next call passes the same cache
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
        out = policy.model(
            input_ids=token[:, None], attention_mask=mask, position_ids=positions,
            use_cache=True, **_cache_kwargs(out),
        )
    return _unpad(tokens.tolist(), logprobs.tolist(), policy.stop_ids)


def _cache_of(out: Any) -> Any:
    """The KV cache a forward call returned (``cache`` from transformers 5.24, ``past_key_values`` before)."""
    return _cache_kwargs(out).popitem()[1]


def _cache_kwargs(out: Any) -> dict[str, Any]:
    """The KV cache of ``out`` as the next forward call's keyword argument.

    transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name warns and goes in 5.40);
    earlier releases only know the old name.
    """
    if "cache" in getattr(out, "__dataclass_fields__", {}):
        return {"cache": out.cache}
    return {"past_key_values": out.past_key_values}


def _sample(policy: TransformersPolicy, logits: Any) -> tuple[Any, Any]:
    """Sampled (or greedy) token per row and its log-probability under ``logits / temperature``."""
    import torch

    if policy.temperature == 0:
        token = logits.argmax(-1)
        return token, torch.log_softmax(logits, -1).gather(-1, token[:, None])[:, 0]
    logp = torch.log_softmax(logits / policy.temperature, -1)
    probs = logp.exp()
    if policy.top_p < 1:
        sorted_probs, index = probs.sort(-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs >= policy.top_p  # keeps the token crossing top_p
        probs = probs.scatter(-1, index, sorted_probs.masked_fill(outside, 0.0))
    token = torch.multinomial(probs, 1, generator=policy.generator)[:, 0]
    return token, logp.gather(-1, token[:, None])[:, 0]


def _unpad(rows: list[list[int]], logps: list[list[float]], stop_ids: set[int]) -> list[tuple[list[int], list[float]]]:
    """Each row up to and including its first stop token."""
    out = []
    for ids, lps in zip(rows, logps, strict=True):
        end = next((i + 1 for i, t in enumerate(ids) if t in stop_ids), len(ids))
        out.append((ids[:end], lps[:end]))
    return out


def _stop_ids(tokenizer: Any, model: Any) -> set[int]:
    """End-of-turn ids: the tokenizer's eos and the generation config's (chat models often add one)."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, (list, tuple)) else {configured}
    ids.discard(None)
    if not ids:
        raise ConfigError("the tokenizer has no eos token; set tokenizer.eos_token before generating.")
    return ids
