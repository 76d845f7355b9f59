"""One GRPO step of a CPU preset, end to end and in parts, for each route a CPU run can take.

Usage:
    python benchmarks/bench_grpo_step.py --model FOLDER [--preset cpu-small-model] [--routes shared hf ...]
                                         [--steps 3] [--repeats 3] [--threads 1] [--json out.json]
    ../vllm-venv/bin/python benchmarks/bench_grpo_step.py ... --routes shared hf vllm   # vLLM's CPU build

Routes (``+lora`` after any of them trains LoRA adapters of rank ``--lora-r`` instead of all weights):

- ``shared``: ``grpo_train.py`` (one process): the sampler is the learner's model, so there is no
  weight sync (:class:`agents.training.grpo_run.GRPORun`);
- ``hf``: ``ray_train.py --engine hf``: a rollout engine of its own, built as a rollout worker builds it
  (:func:`agents.training.ray.engines.make_engine`), which loads the learner's weights after each update
  (``full_state_dict``, LoRA merged, then ``load_weights``);
- ``vllm``: the same with ``--engine vllm`` (vLLM's CPU build, where installed: docs/DISTRIBUTED.md).

Engine and learner run in this process (vLLM in its own processes, as always), not in Ray actors: the
step's parts are what a Ray run computes, without Ray's scheduling and object-store copies (small beside
the parts here) and without Ray's nice-15 actors. Each route is timed in a fresh process per repeat,
routes interleaved within a repeat, each on ``--threads`` torch threads (vLLM's worker: one OpenMP
thread per bound core, ``VLLM_CPU_OMP_THREADS_BIND``, reported as ``engine_threads``). Timed: the
learner's build (model load, LoRA, optimizer), the engine's start, then per step the rollouts of the
preset's ``prompts_per_step x group_size`` episodes, the update, and the weight sync. Step 1 (first
allocations, vLLM's kernel preparation) is reported apart from the later, steady steps. The update
sees every group mixed by default (``--rewards mixed``: the rewards are set to 1, 0, 1, ... within each
group after the rollouts), so it forwards every sample as a run at a mid-range reward does; the env's
own rewards are in the JSON (``reward``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import exit_on_errors  # noqa: E402
from benchmarks.common import benchmark_parser, format_table, machine, write_json  # noqa: E402

ROUTES = ("shared", "hf", "vllm", "shared+lora", "hf+lora", "vllm+lora")
PARTS = ("rollout_s", "update_s", "sync_s", "step_s")


def build(route: str, options: Any) -> tuple[Any, Any, dict[str, float]]:
    """The run (learner, env, episode plan) and the engine (``None`` for ``shared``), with their build times."""
    from agents.training.cli import parse_dataclass
    from agents.training.grpo_config import PRESETS, GRPOArgs
    from agents.training.grpo_run import GRPORun

    engine_kind = route.split("+")[0]
    flags = ["--preset", options.preset, "--model", options.model, "--out-dir", "unused", "--logger", "none",
             "--lora-r", str(options.lora_r if route.endswith("+lora") else 0), "--device", "cpu",
             # ray_train's learner recomputes the old logprobs behind a vLLM sampler (--recompute-old-logprobs auto)
             "--recompute-old-logprobs", "on" if engine_kind == "vllm" else "auto", *shlex.split(options.set)]
    started = time.perf_counter()
    run = GRPORun(parse_dataclass(GRPOArgs, flags, presets=PRESETS))
    times = {"learner_build_s": time.perf_counter() - started, "engine_start_s": 0.0}
    engine = None
    if engine_kind != "shared":
        from agents.training.ray.engine_config import EngineConfig
        from agents.training.ray.engines import make_engine

        args = run.args
        started = time.perf_counter()
        engine = make_engine(EngineConfig(
            kind=engine_kind, model=options.model, temperature=args.temperature, top_p=args.top_p,
            max_new_tokens=args.max_new_tokens, max_context=args.max_context, batch_size=args.rollout_batch_size,
            seed=args.seed, precision="float32"))
        times["engine_start_s"] = time.perf_counter() - started
    return run, engine, times


def one_step(run: Any, engine: Any, step: int, rewards: str) -> dict[str, float]:
    """Rollouts, update and (with an engine) weight sync of one step; seconds and token counts."""
    from agents.training.ray.learner_group import full_state_dict
    from agents.training.rollout import rollout

    started = time.perf_counter()
    if engine is None:
        trajectories = run.collect(step)
    else:
        pairs = run.plan.rollouts(step, run.args.group_size, 0)
        engine.reseed(run.args.seed + step)
        trajectories = rollout(run.env.factory(), engine.policy(greedy=False), [s for s, _ in pairs],
                               env_id=run.env.env_id, indices=[i for _, i in pairs],
                               batch_size=run.args.rollout_batch_size)
    rollout_s = time.perf_counter() - started
    reward = statistics.fmean(t.reward for t in trajectories)
    if rewards == "mixed":
        mix_rewards(trajectories)
    started = time.perf_counter()
    train = run.learn(trajectories)
    update_s = time.perf_counter() - started
    sync_s = 0.0  # the shared route's sampler is the learner's model
    if engine is not None:
        started = time.perf_counter()
        engine.load_weights(full_state_dict(run.learner.model))
        sync_s = time.perf_counter() - started
    turns = [turn for t in trajectories for turn in t.turns]
    return {"rollout_s": rollout_s, "update_s": update_s, "sync_s": sync_s, "step_s": rollout_s + update_s + sync_s,
            "episodes": len(trajectories), "turns": len(turns),
            "generated_tokens": sum(len(turn.response_ids or ()) for turn in turns),
            "prompt_tokens": sum(len(turn.prompt_ids or ()) for turn in turns),
            "forwarded_tokens": train.get("forwarded_tokens", 0.0), "reward": reward}


def mix_rewards(trajectories: list[Any]) -> None:
    """Rewards 1, 0, 1, ... within each group: every group mixed, so the update forwards every sample, as
    in a run whose reward is mid-range (an untrained or early model often scores every rollout 0, and
    then no sample is forwarded: the update would cost nothing)."""
    from agents.training.rollout import episode_group

    seen: dict[Any, int] = {}
    for trajectory in trajectories:
        group = episode_group(trajectory)
        trajectory.reward = float(seen.setdefault(group, 0) % 2 == 0)
        seen[group] += 1


def measure_route(route: str, options: Any) -> dict[str, Any]:
    """One route in this process: builds, ``--steps`` steps, the threads each part ran on."""
    import torch

    torch.set_num_threads(options.threads)
    run, engine, times = build(route, options)
    steps = [one_step(run, engine, step, options.rewards) for step in range(options.steps)]
    return {"route": route, **times, "learner_threads": torch.get_num_threads(),
            "engine_threads": engine.torch_threads() if engine else [torch.get_num_threads()], "steps": steps}


def child_command(route: str, options: Any, out: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--one", route, "--json", str(out), "--model", options.model,
            "--preset", options.preset, f"--set={options.set}", "--steps", str(options.steps),
            "--threads", str(options.threads), "--lora-r", str(options.lora_r), "--rewards", options.rewards]


def run_child(route: str, options: Any) -> dict[str, Any]:
    """One route in a fresh process (engines and caches never outlive their measurement)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(options.threads)}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "row.json"
        done = subprocess.run(child_command(route, options, out), capture_output=True, text=True, env=env,
                              check=False)
        if done.returncode != 0 or not out.exists():
            return {"route": route, "error": done.stderr[-3000:]}
        return json.loads(out.read_text())


def summary(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """Per route, medians over repeats: build, start, step 1 and the steady steps' parts."""
    table = []
    for route in dict.fromkeys(row["route"] for row in rows if "error" not in row):
        runs = [row for row in rows if row["route"] == route and "error" not in row]
        steady = [s for row in runs for s in row["steps"][1:]]
        first = [row["steps"][0] for row in runs]
        med = lambda items, key: statistics.median(item[key] for item in items) if items else float("nan")  # noqa: E731
        table.append([route, len(runs), med(runs, "learner_build_s"), med(runs, "engine_start_s"),
                      med(first, "step_s"), *(med(steady, part) for part in PARTS),
                      med(steady, "generated_tokens") / med(steady, "rollout_s") if steady else float("nan")])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--model", required=True, help="smollm2 or a model folder (e.g. an SFT run's final/)")
    parser.add_argument("--preset", default="cpu-small-model", help="the GRPO preset whose step is timed")
    parser.add_argument("--set", default="", help="grpo_train.py flags over the preset's, in one string "
                                                  "(--set='--prompts-per-step 2 --group-size 4')")
    parser.add_argument("--routes", nargs="+", choices=ROUTES, default=["shared", "hf"], help="what to time")
    parser.add_argument("--steps", type=int, default=3, help="steps per route and repeat (the first apart)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per route, routes interleaved")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the learner and the hf engine")
    parser.add_argument("--lora-r", type=int, default=8, help="adapter rank of the +lora routes")
    parser.add_argument("--rewards", choices=("mixed", "as-sampled"), default="mixed",
                        help="mixed: 1, 0, 1... within each group before the update, so it forwards every sample "
                             "(a mid-range run's cost); as-sampled: the env's (flat groups forward nothing)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the child process: one route
    options = parser.parse_args(argv)
    if options.one:  # a child: its row goes to --json (vLLM's processes also print to stdout)
        Path(options.json).write_text(json.dumps(measure_route(options.one, options)))
        return 0
    at_start = machine()
    rows = []
    for repeat in range(options.repeats):
        for route in options.routes:
            rows.append({"repeat": repeat, **run_child(route, options)})
            print(f"repeat {repeat} {route}: " + ("failed" if "error" in rows[-1] else "done"), flush=True)
            write_json(options.json, {"machine_at_start": at_start, "threads": options.threads,
                                      "rows": rows})  # so far: a stopped benchmark keeps what it measured
    headers = ["route", "runs", "learner build s", "engine start s", "step 1 s",
               *(f"steady {p}" for p in PARTS), "steady gen tok/s"]
    print(format_table(headers, summary(rows)))
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
