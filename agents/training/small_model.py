"""A small randomly initialized model of SmolLM2's architecture, for training runs a CPU can finish.

SmolLM2-135M takes hours of this project's 2-core CPU per GRPO step of 8 × 8 rollouts (docs/TRAINING.md),
so a run long enough to learn does not fit there. The same experiment fits with a model of a few million
parameters: SmolLM2's Llama architecture (tied embeddings, grouped-query attention, SiLU MLP) and chat
template, a small hidden size and few layers, randomly initialized and then trained by ``experiments/sft.py``
before GRPO, through the very code paths SmolLM2 takes.

Its tokenizer is either SmolLM2's (49,152 tokens) or a byte-level BPE trained here on the training
family's text (:func:`train_tokenizer`) with SmolLM2's special tokens at SmolLM2's ids and its chat
template. With a hidden size of 128, SmolLM2's vocabulary makes the output projection about three
quarters of the training compute; a 4,096-token vocabulary cuts it twelvefold.
``experiments/make_small_model.py`` is the command line; the folder it writes loads wherever a model
name does (``--model FOLDER``, ``--policy hf:FOLDER``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from atommem_env.errors import ConfigError


@dataclass(frozen=True)
class SmallLlama:
    """The shape of the small model (a ``LlamaConfig``'s size fields). The defaults make 1.5M parameters
    with a 4,096-token vocabulary (0.5M of them the tied embedding), 7.3M with SmolLM2's 49,152."""

    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 512
    max_positions: int = 4096

    def problems(self) -> list[str]:
        """What is wrong with the shape, one line each (empty when it is valid)."""
        sizes = {"hidden_size": self.hidden_size, "layers": self.layers, "heads": self.heads,
                 "kv_heads": self.kv_heads, "intermediate_size": self.intermediate_size,
                 "max_positions": self.max_positions}
        found = [f"{name} {value}: need at least 1." for name, value in sizes.items() if value < 1]
        if found:
            return found
        if self.hidden_size % self.heads:
            found.append(f"hidden_size {self.hidden_size} is not a multiple of heads {self.heads}.")
        if self.heads % self.kv_heads:
            found.append(f"heads {self.heads} is not a multiple of kv_heads {self.kv_heads}.")
        return found


SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # SmolLM2's, at its ids 0, 1, 2


def trajectory_texts(paths: Iterable[str | Path]) -> Iterable[str]:
    """Every system prompt, observation and response of the ``trajectories.jsonl`` files ``paths``
    (evaluate.py's output), the text a tokenizer is trained on."""
    for path in paths:
        with open(path) as handle:
            for line in handle:
                episode = json.loads(line)
                yield episode.get("system") or ""
                for turn in episode["turns"]:
                    yield turn["user"]
                    yield turn["response"]


def train_tokenizer(texts: Iterable[str], vocab_size: int, template_source: str = "smollm2") -> Any:
    """A byte-level BPE of ``vocab_size`` tokens trained on ``texts``, with SmolLM2's special tokens at
    its ids (``<|endoftext|>`` 0, ``<|im_start|>`` 1, ``<|im_end|>`` 2: unknown, start and end of turn)
    and the chat template of ``template_source`` (a model name or folder).

    Raises:
        ConfigError: ``vocab_size`` cannot hold the 256 bytes and the special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from agents.models import resolve_model

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ConfigError(f"vocab_size {vocab_size}: a byte-level BPE needs at least {256 + len(SPECIAL_TOKENS)}.")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts, trainer)
    template = AutoTokenizer.from_pretrained(resolve_model(template_source)).chat_template
    unk, bos, eos = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token=unk, bos_token=bos, eos_token=eos,
                                   pad_token=eos, chat_template=template)


def build_small_llama(folder: str | Path, shape: SmallLlama, tokenizer: Any, seed: int = 0,
                      about: dict[str, Any] | None = None) -> dict[str, int]:
    """Write a randomly initialized Llama of ``shape`` with ``tokenizer`` (and its chat template) to
    ``folder``; returns ``{"parameters": ..., "embedding_parameters": ...}``.

    Special tokens (pad, end of sequence, beginning of sequence) are the tokenizer's, so generation stops
    at its end-of-turn token. ``folder`` gets ``small_model.json``: the shape, the seed, the counts and
    ``about`` (what the tokenizer is).

    Raises:
        ConfigError: the shape is invalid, or ``folder`` exists and is not empty.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    problems = shape.problems()
    if problems:
        raise ConfigError("Invalid small model shape:\n  " + "\n  ".join(problems))
    out = Path(folder)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty; pick a new folder for the small model.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.max_positions, tie_word_embeddings=True,
        rope_parameters={"rope_theta": 100_000.0, "rope_type": "default"},  # SmolLM2's
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    counts = {"parameters": sum(p.numel() for p in model.parameters()),
              "embedding_parameters": config.vocab_size * config.hidden_size}  # tied: one matrix
    (out / "small_model.json").write_text(json.dumps(
        {"shape": asdict(shape), "seed": seed, **counts, **(about or {})}, indent=2) + "\n")
    return counts
