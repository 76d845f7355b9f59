"""A tiny randomly initialized causal LM with a word-level tokenizer and a chat template, saved to a
folder, so local-model code paths run in tests without downloads (a few MB, built in about a second)."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "<unk> <pad> <eos> system user assistant : the a of in was born who where what is answer memory "
    "add_memory update_memory final_answer < > / document chunk question Paris France yes no"
).split()
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} <eos> {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)


def build_tiny_lm(folder: Path, seed: int = 0, max_positions: int = 4096) -> Path:
    """Write a tiny Llama model and its tokenizer to ``folder`` and return it."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=max_positions, pad_token_id=vocab["<pad>"],
        eos_token_id=vocab["<eos>"], bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
