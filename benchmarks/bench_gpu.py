"""Generation and learner tokens/s of a Qwen3-shaped model with random weights, through transformers.

Usage (on a machine with a GPU):
    python benchmarks/bench_gpu.py [--shape qwen3-8b] [--batch 8] [--prompt-tokens 4096]
                                   [--new-tokens 256] [--device cuda] [--json out.json]

Random weights: no download, and throughput does not depend on the values. "prefill" is one forward
pass over ``batch`` prompts; "generation" is greedy ``generate`` of exactly ``new-tokens`` tokens per
prompt (prefill included, as a rollout pays it); "learner" is a forward and backward pass over
``batch`` sequences of prompt + response length in bf16 (no optimizer step: AdamW states for 8B
parameters would not fit beside the activations). ``--shape tiny --device cpu`` checks the script
anywhere in seconds; its numbers mean nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import exit_on_errors  # noqa: E402
from benchmarks.common import benchmark_parser, format_table, write_json  # noqa: E402

# Published shapes (config.json of Qwen/Qwen3-8B and Qwen/Qwen3-0.6B); "tiny" only tests the script.
SHAPES: dict[str, dict[str, Any]] = {
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False),
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=1000, tie_word_embeddings=True),
}


def build(shape: str, device: str, dtype: str) -> Any:
    """A randomly initialized Qwen3ForCausalLM, created directly on ``device`` in ``dtype``."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**SHAPES[shape], max_position_embeddings=40960)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            model = Qwen3ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def _timed(device: str, fn: Any) -> float:
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def measure(model: Any, device: str, batch: int, prompt_tokens: int, new_tokens: int) -> dict[str, Any]:
    import torch

    vocab = model.config.vocab_size
    prompts = torch.randint(0, vocab, (batch, prompt_tokens), device=device)
    mask = torch.ones_like(prompts)
    with torch.inference_mode():
        model(input_ids=prompts[:, :8])  # warm-up: kernels, allocator
        prefill = _timed(device, lambda: model(input_ids=prompts, attention_mask=mask))
        out: list[Any] = []
        generate = _timed(device, lambda: out.append(model.generate(
            input_ids=prompts, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            do_sample=False, pad_token_id=0)))
    if out[0].shape != (batch, prompt_tokens + new_tokens):  # tokens/s below assumes every token was made
        raise RuntimeError(f"generate returned {tuple(out[0].shape)}, not {(batch, prompt_tokens + new_tokens)}")
    sequences = torch.randint(0, vocab, (batch, prompt_tokens + new_tokens), device=device)
    model.train()
    learner = _timed(device, lambda: model(input_ids=sequences, labels=sequences).loss.backward())
    model.zero_grad(set_to_none=True)
    model.eval()
    return {"batch": batch, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
            "prefill_s": prefill, "prefill_tokens_per_s": batch * prompt_tokens / prefill,
            "generate_s": generate, "generated_tokens_per_s": batch * new_tokens / generate,
            "learner_s": learner, "learner_tokens_per_s": batch * (prompt_tokens + new_tokens) / learner}


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen3-8b",
                        help="model shape (random weights; tiny only tests the script)")
    parser.add_argument("--batch", type=int, default=8, help="sequences per forward pass")
    parser.add_argument("--prompt-tokens", type=int, default=4096, help="prompt length of each sequence")
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens generated per sequence")
    parser.add_argument("--device", default="cuda", help="torch device")
    parser.add_argument("--dtype", default="bfloat16", help="torch dtype of the weights")
    args = parser.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("GPU benchmark skipped: no CUDA device here (run it where one is, or pass --shape tiny --device cpu).")
        return 0
    model = build(args.shape, args.device, args.dtype)
    row = {"shape": args.shape, "dtype": args.dtype, "device": args.device,
           **measure(model, args.device, args.batch, args.prompt_tokens, args.new_tokens)}
    if args.device.startswith("cuda"):
        row["gpu"] = torch.cuda.get_device_name(args.device)
    print(format_table(["shape", "batch", "prompt", "new", "prefill tok/s", "generated tok/s", "learner tok/s"],
                       [[row["shape"], row["batch"], row["prompt_tokens"], row["new_tokens"],
                         row["prefill_tokens_per_s"], row["generated_tokens_per_s"], row["learner_tokens_per_s"]]]))
    write_json(args.json, {"rows": [row]})
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
