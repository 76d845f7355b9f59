"""The rollout workers' inference engines as a rollout worker builds them: start, generation, weight sync.

Usage:
    python benchmarks/bench_engines.py --engine hf [--model smollm2] [--batch 8] [--max-new-tokens 64]
                                       [--repeats 3] [--threads 1] [--json out.json]
    ../vllm-venv/bin/python benchmarks/bench_engines.py --engine vllm ...   # vLLM (docs/DISTRIBUTED.md)

The engine comes from ``agents.training.ray.engines.make_engine`` with the settings of a rollout worker (on
vLLM's CPU build: eager, float32, 1 GiB of KV cache; see agents/training/ray/vllm_engine.py). Timed: the
engine's construction (``start``), the first batch (``first_batch``: vLLM's CPU build prepares its
kernels in the first forward passes), then ``--repeats`` batches of ``--batch`` first observations of
Synthetic episodes (compact prompts, a few hundred tokens), sampled at temperature 1 (generated
tokens/s over all of them), and one weight sync of the model's own float32 state dict
(``load_weights``, as after every update). Timings depend on the machine and its load, which the JSON
records at the start and the end.

Threads are set, not inherited: this process runs ``--threads`` torch threads (the ``hf`` engine computes
here, as a rollout worker's one thread does); vLLM's worker runs one OpenMP thread per core it binds
(``VLLM_CPU_OMP_THREADS_BIND``: ``auto`` binds all cores but one, i.e. one on a 2-core machine, or e.g.
``0`` for core 0). Both are reported (``torch_threads``, ``engine_threads``): compare engines only on
equal threads.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import exit_on_errors  # noqa: E402
from benchmarks.common import benchmark_parser, format_table, machine, write_json  # noqa: E402

ENV_ID = "AtomMem-Synthetic-Tiny-v0"  # the small CPU setting (docs/TRAINING.md)


def observations(count: int) -> list[dict[str, Any]]:
    """The first observations of ``count`` Synthetic episodes (what a rollout's first turn sees)."""
    import gymnasium as gym

    import atommem_env  # noqa: F401  (registers the ids)

    env = gym.make(ENV_ID)
    return [env.reset(seed=seed)[0] for seed in range(count)]


def measure(engine_kind: str, model: str, batch: int, max_new_tokens: int, repeats: int) -> dict[str, Any]:
    """One row: seconds per phase, prompt and generated tokens, generated tokens/s."""
    import torch
    from transformers import AutoModelForCausalLM

    from agents.models import resolve_model
    from agents.training.ray.engine_config import EngineConfig
    from agents.training.ray.engines import make_engine

    obs = observations(batch)
    started = time.perf_counter()
    engine = make_engine(EngineConfig(kind=engine_kind, model=model, max_new_tokens=max_new_tokens,
                                      max_context=2048, batch_size=batch, temperature=1.0, top_p=1.0))
    start_s = time.perf_counter() - started
    policy = engine.policy(greedy=False)
    started = time.perf_counter()
    policy.act(obs)
    first_s = time.perf_counter() - started
    generated = prompt = 0
    batch_s = []
    for _ in range(repeats):
        started = time.perf_counter()
        completions = policy.act(obs)
        batch_s.append(time.perf_counter() - started)
        generated += sum(len(c.response_ids) for c in completions)
        prompt += sum(len(c.prompt_ids) for c in completions)
    generate_s = sum(batch_s)
    state = AutoModelForCausalLM.from_pretrained(resolve_model(model), dtype=torch.float32).state_dict()
    started = time.perf_counter()
    engine.load_weights(state)
    sync_s = time.perf_counter() - started
    return {"engine": engine_kind, "model": model, "batch": batch, "max_new_tokens": max_new_tokens,
            "repeats": repeats, "torch_threads": torch.get_num_threads(), "engine_threads": engine.torch_threads(),
            "start_s": start_s, "first_batch_s": first_s, "batch_s": batch_s, "generate_s": generate_s,
            "prompt_tokens": prompt, "generated_tokens": generated,
            "generated_tokens_per_s": generated / generate_s, "weight_sync_s": sync_s,
            "state_dict_mb": sum(t.nbytes for t in state.values()) / 2**20}


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--engine", choices=("hf", "vllm"), default="hf", help="the inference engine to time")
    parser.add_argument("--model", default="smollm2", help="smollm2, a hub name or a local model folder")
    parser.add_argument("--batch", type=int, default=8, help="prompts per generate call")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens generated per prompt")
    parser.add_argument("--repeats", type=int, default=3, help="timed generate calls after the first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process (the hf engine's)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    at_start = machine()
    row = measure(args.engine, args.model, args.batch, args.max_new_tokens, args.repeats)
    keys = ("engine", "torch_threads", "engine_threads", "start_s", "first_batch_s", "generate_s", "prompt_tokens",
            "generated_tokens", "generated_tokens_per_s", "weight_sync_s")
    print(format_table(keys, [[row[k] for k in keys]]))
    write_json(args.json, {"machine_at_start": at_start, "rows": [row]})
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
