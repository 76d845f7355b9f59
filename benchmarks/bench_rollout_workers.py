"""Rollout throughput of ray_train.py with 1 and 2 rollout workers, and how long the learner waits.

    python benchmarks/bench_rollout_workers.py --json bench_rollout_workers.json
    python benchmarks/bench_rollout_workers.py --model smollm2 --max-new-tokens 32   # a real small model

Each setting runs the GRPO steps of ``experiments/ray_train.py`` (``--num-gpus 0``, one learner) on a
small Synthetic setting and times them, after ``--warmup`` steps that are not counted (actor start,
first allocations). Per setting it reports episodes per hour and generated tokens per second of the
rollout phase, and the learner's wait share: rollout time / (rollout + update time) per step, the
share of a synchronous GRPO step in which the learner has nothing to do. The default model is the
random tiny Llama of the tests (``tests/support/tiny_lm.py``): it always writes ``--max-new-tokens`` tokens, so
every setting does the same work. Every actor runs one torch thread (the rollout workers' and learners'
setting, recorded as ``threads_per_actor``), the driver one; ``update_s`` includes the weight sync.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import exit_on_errors  # noqa: E402
from benchmarks.common import benchmark_parser, machine, write_json  # noqa: E402

ENV_ID = "AtomMem-Synthetic-Tiny-v0"  # the small CPU setting (docs/TRAINING.md)


def main(argv: list[str] | None = None) -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--model", default="tiny", help="'tiny' (built here) or what ray_train.py --model takes")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="rollout worker counts to measure")
    parser.add_argument("--steps", type=int, default=4, help="measured steps per setting")
    parser.add_argument("--warmup", type=int, default=1, help="steps run first and not counted")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="tokens generated per turn")
    options = parser.parse_args(argv)

    import ray
    import torch

    from agents.training.ray.cluster import connect

    torch.set_num_threads(1)  # the driver; every actor sets its own (one thread each: threads_per_actor)

    at_start = machine()
    with tempfile.TemporaryDirectory() as scratch:
        model = _model(options.model, Path(scratch))
        connect(None, num_cpus=4)
        results = [_measure(model, w, options, Path(scratch) / f"run-{w}") for w in options.workers]
        ray.shutdown()
    print(_table(results, options))
    write_json(options.json, {"machine_at_start": at_start, "threads_per_actor": _actor_threads(), "rows": results})


def _actor_threads() -> dict[str, int]:
    """Torch threads of each kind of actor (their configs' defaults, which ray_train.py keeps)."""
    from agents.training.ray.learner_group import LearnerSpec
    from agents.training.ray.workers import WorkerConfig

    return {"rollout_worker": WorkerConfig.torch_threads, "learner": LearnerSpec.torch_threads}


def _model(name: str, scratch: Path) -> str:
    if name != "tiny":
        return name
    from tests.support.tiny_lm import build_tiny_lm

    return str(build_tiny_lm(scratch / "tiny", max_positions=2048))


def _measure(model: str, workers: int, options: argparse.Namespace, out_dir: Path) -> dict[str, float]:
    """Run warm-up and measured steps with ``workers`` rollout workers; sums over the measured ones."""
    from agents.training.cli import parse_dataclass
    from agents.training.ray.config import RayArgs
    from agents.training.ray.run import EXTRAS, DistributedRun

    args = parse_dataclass(RayArgs, [
        "--model", model, "--env-id", ENV_ID, "--num-gpus", "0", "--rollout-workers", str(workers),
        "--prompts-per-step", "4", "--group-size", "4", "--rollout-batch-size", "4",
        "--max-new-tokens", str(options.max_new_tokens), "--lr", "1e-5", "--warmup-steps", "0", "--kl-coef", "0",
        "--eval-episodes", "0", "--logger", "none", "--out-dir", str(out_dir),
    ])
    run = DistributedRun(args)
    totals = {"rollout_s": 0.0, "update_s": 0.0, "episodes": 0.0, "generated_tokens": 0.0}
    try:
        for step in range(options.warmup + options.steps):
            started = time.perf_counter()
            trajectories = run.collect(step, dict.fromkeys(EXTRAS, 0.0))
            rollout_s = time.perf_counter() - started
            run.learn(trajectories)
            update_s = time.perf_counter() - started - rollout_s
            if step >= options.warmup:
                totals["rollout_s"] += rollout_s
                totals["update_s"] += update_s
                totals["episodes"] += len(trajectories)
                totals["generated_tokens"] += sum(len(t.response_ids or ()) for tr in trajectories for t in tr.turns)
    finally:
        run.close()
    return {
        "workers": workers, "steps": options.steps, **totals,
        "episodes_per_hour": totals["episodes"] / totals["rollout_s"] * 3600,
        "generated_tokens_per_s": totals["generated_tokens"] / totals["rollout_s"],
        "learner_wait_share": totals["rollout_s"] / (totals["rollout_s"] + totals["update_s"]),
    }


def _table(results: list[dict[str, float]], options: argparse.Namespace) -> str:
    lines = [
        f"model {options.model}, {ENV_ID}, 4 prompts x 4 rollouts per step, {options.steps} measured steps "
        f"after {options.warmup} warm-up, max {options.max_new_tokens} new tokens per turn",
        "| rollout workers | episodes | rollout s | update s | episodes/hour | generated tokens/s "
        "| learner wait share |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['workers']} | {r['episodes']:.0f} | {r['rollout_s']:.1f} | {r['update_s']:.1f} | "
            f"{r['episodes_per_hour']:,.0f} | {r['generated_tokens_per_s']:.1f} | {r['learner_wait_share']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    with exit_on_errors():
        main()
