"""GRPO on a Ray cluster: rollout workers next to their inference engines, a learner group, weight sync.

:class:`DistributedRun` is a :class:`~agents.training.runs.Run` like the single-process
:class:`~agents.training.grpo_run.GRPORun`, built from the same step functions of
:mod:`agents.training.runs`; :func:`agents.training.runs.train` drives either. ``experiments/ray_train.py``
describes what the actors do.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from agents.training.envs import EnvSpec
from agents.training.ray.config import RayArgs
from agents.training.ray.deadline import ChunkDeadline
from agents.training.ray.engine_config import EngineConfig
from agents.training.ray.placement import PlacementPlan
from agents.training.ray.workers import RayWorkerPool, WorkerConfig
from agents.training.rollout import Trajectory
from agents.training.runs import EpisodePlan, eval_metrics, grpo_step, newest_checkpoint
from atommem_env.errors import ConfigError

log = logging.getLogger(__name__)

# Summed over a step's rounds.
EXTRAS = ("rollout/stale_episodes", "rollout/rerun_chunks", "rollout/worker_restarts", "rollout/hung_workers")


def make_plan(args: RayArgs) -> PlacementPlan:
    """The placement of ``args``.

    Raises:
        PlacementError: the GPUs cannot be planned as asked (the message says what to change).
        ConfigError: the learner strategy does not fit the plan.
    """
    from agents.training.fsdp import strategy_problems
    from agents.training.ray.embedding_service import needs_service
    from agents.training.ray.placement import plan_placement

    plan = plan_placement(
        args.num_gpus, mode=args.placement, gpus_per_node=args.gpus_per_node,
        tensor_parallel_size=args.tensor_parallel_size, num_learners=args.num_learners,
        rollout_workers=args.rollout_workers, cpus_per_actor=args.cpus_per_actor,
        embedding_service=needs_service(env_spec(args).options().get("embedder")),
    )
    problems = strategy_problems(args.learner_strategy, len(plan.learners), args.lora_r)
    if problems:
        raise ConfigError("\n".join(problems))
    return plan


def env_spec(args: RayArgs) -> EnvSpec:
    """The rollout workers' envs."""
    return EnvSpec.from_flags(args.env_id, args.env_kwargs, args.data_dir)


def worker_config(args: RayArgs, env: EnvSpec, *, sleep_mode: bool = False) -> WorkerConfig:
    """What each rollout worker builds: its engine and its envs (``sleep_mode`` for colocated engines)."""
    engine = EngineConfig(
        kind=args.engine, model=args.model, device="cuda" if args.num_gpus else "cpu", temperature=args.temperature,
        top_p=args.top_p, max_new_tokens=args.max_new_tokens, max_context=args.max_context,
        batch_size=args.rollout_batch_size, seed=args.seed, tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization, sleep_mode=sleep_mode, precision=args.precision,
    )
    return WorkerConfig(engine=engine, env=env)


def learner_spec(args: RayArgs) -> Any:
    """How each learner rank builds its learner: the GRPO flags' settings, in the engines' precision."""
    from agents.training.ray.learner_group import LearnerSpec

    return LearnerSpec(
        model=args.model, device="cuda" if args.num_gpus else "cpu", lora_r=args.lora_r,
        keep_checkpoints=args.keep_checkpoints, strategy=args.learner_strategy,
        config=args.learner_settings(engine=args.engine, on_cuda=bool(args.num_gpus)),
    )


def dry_run(args: RayArgs) -> tuple[str, list[str]]:
    """The plan of ``args`` checked against the cluster (``--address``) or this machine.

    Returns:
        The report (the plan, what it was checked against, warnings) and the reasons it does not fit
        (empty when it fits).
    """
    from agents.training.ray.cluster import cluster_nodes, connect, local_resources
    from agents.training.ray.placement import check_cluster
    from agents.training.ray.placement_text import describe_plan
    from agents.training.ray.requirements import describe, missing

    plan = make_plan(args)
    if args.address:
        connect(args.address)
        nodes, where = cluster_nodes(), f"the cluster at {args.address}"
    else:
        nodes, where = local_resources(), "this machine (a local Ray cluster; pass --address to check a cluster)"
    errors, warnings = check_cluster(plan, nodes)
    lacking = missing(args)
    if lacking:
        errors.append(describe(lacking))
    lines = [describe_plan(plan), f"Checked against {where}: " + "; ".join(_node_text(n) for n in nodes)]
    lines += [f"warning: {warning}" for warning in warnings]
    return "\n".join(lines), errors


def _node_text(node: dict[str, float]) -> str:
    return ", ".join(f"{node.get(name, 0.0):g} {name}" for name in ("GPU", "CPU"))


def check_fit(plan: PlacementPlan) -> None:
    """The dry run's check of a local run's ``plan`` against this machine, made before Ray starts.

    (On a cluster, ``--address``, the run waits for its placement groups instead: an autoscaler may add
    the nodes they need.)

    Raises:
        ClusterError: this machine lacks the GPUs the plan needs.
    """
    from agents.training.errors import ClusterError
    from agents.training.ray.cluster import local_resources
    from agents.training.ray.placement import check_cluster

    errors, _ = check_cluster(plan, local_resources())
    if errors:
        raise ClusterError("The plan does not fit this machine:\n  " + "\n  ".join(errors)
                           + "\n(--dry-run shows the plan and what it needs.)")


class DistributedRun:
    """The GRPO run with Ray actors doing the rollouts and the updates.

    ``step`` collects the step's episodes from the rollout workers, updates the learner group, and
    syncs the new weights to the engines; every trajectory records the weights ``version`` it was
    played with.
    """

    def __init__(self, args: RayArgs) -> None:
        from agents.training.ray.cluster import connect, create_placement_groups

        self.args = args
        self.env = env_spec(args)
        self.plan = EpisodePlan.for_run(args, self.env)
        self.placement = make_plan(args)
        self.version = 0  # optimizer steps behind the weights the engines hold
        self.groups: list[Any] = []
        self.learners: Any = None
        self.pool: Any = None
        self.sync: Any = None
        if not args.address:
            check_fit(self.placement)  # in seconds, before Ray starts
        self.started_ray = connect(args.address, num_cpus=_local_cpus(self.placement))
        try:
            self.groups = create_placement_groups(self.placement)
            self._start_actors()
        except BaseException:
            self.close()
            raise

    def _start_actors(self) -> None:
        from agents.training.ray.learner_group import LearnerGroup
        from agents.training.ray.weight_sync import make_sync

        args, spec = self.args, learner_spec(self.args)
        log.info("Old logprobs: %s", "recomputed by the learners" if spec.config["recompute_old_logprobs"]
                 else "the sampler's")
        self.learners = LearnerGroup(spec, self.placement, self.groups)
        config = worker_config(args, self.env, sleep_mode=self.placement.mode == "colocated")
        # The engines load the same initial weights as the learners from args.model: nothing to send yet.
        collective = args.weight_sync == "collective"
        self.pool = RayWorkerPool(config, self.placement, self.groups, None, 0, max_restarts=args.max_worker_restarts,
                                  fetch_weights=self.learners.weights if collective else None,
                                  deadline=ChunkDeadline(fixed_s=args.chunk_deadline_s))
        self.sync = make_sync(args.weight_sync, self.learners, self.pool)

    def step(self, step: int) -> dict[str, float]:
        """Roll out the step's groups on the workers, update the learners, sync the weights; the metrics."""
        extras: dict[str, float] = dict.fromkeys(EXTRAS, 0.0)
        outside_before = self.pool.restarts_outside_rollout
        metrics = grpo_step(lambda sample_round: self.collect(step, extras, sample_round), self.learn, self.args)
        # Workers replaced while loading weights, sleeping or waking: counted here, not only logged.
        extras["workers/restarts_outside_rollout"] = float(self.pool.restarts_outside_rollout - outside_before)
        rollout_s, update_s = metrics["time/rollout_s"], metrics["time/update_s"]
        metrics["time/learner_wait_share"] = rollout_s / max(rollout_s + update_s, 1e-9)
        metrics.update(extras)
        return metrics

    def collect(self, step: int, extras: dict[str, float], sample_round: int = 0) -> list[Trajectory]:
        """Round ``sample_round`` of the step's episodes from the workers; ``extras`` adds up the rounds'
        ``rollout/*`` bookkeeping."""
        from agents.training.ray.dispatch import EpisodeSpec

        pairs = self.plan.rollouts(step, self.args.group_size, sample_round)
        specs = [EpisodeSpec(uid, seed, index) for uid, (seed, index) in enumerate(pairs)]
        trajectories, stats = self.pool.run(specs, greedy=False, seed=_chunk_seed(self.args.seed, step, sample_round),
                                            watch=self.learners.check)
        extras["rollout/weights_version"] = float(self.version)  # every round plays the same weights
        extras["rollout/stale_episodes"] += sum(t.version != self.version for t in trajectories)
        extras["rollout/rerun_chunks"] += stats.requeued
        extras["rollout/worker_restarts"] += stats.restarts
        extras["rollout/hung_workers"] += stats.hung
        return trajectories

    def learn(self, trajectories: list[Trajectory]) -> dict[str, float]:
        """One update of the learner group, then the new weights to every engine."""
        from agents.training.grpo import grpo_samples

        samples = grpo_samples(trajectories, scale_by_std=self.args.scale_by_std)
        colocated = self.placement.mode == "colocated"
        if colocated:
            self.pool.sleep()  # the engines give their GPU memory to the learners for the update
        train: dict[str, float] = self.learners.update(samples)
        started = time.perf_counter()
        if colocated:
            self.pool.wake()
        self._sync_weights(self.version + 1)
        train["weight_sync_s"] = time.perf_counter() - started
        return train

    def _sync_weights(self, version: int) -> None:
        self.sync.push(version)
        self.version = version

    def evaluate(self) -> dict[str, float]:
        """Greedy play of the held-out episodes on the workers: ``eval/*`` metrics."""
        from agents.training.ray.dispatch import EpisodeSpec

        indices = self.plan.held_out()
        if not indices:
            return {}
        specs = [EpisodeSpec(uid, self.plan.eval_seed(i), i) for uid, i in enumerate(indices)]
        trajectories, stats = self.pool.run(specs, greedy=True, seed=0, watch=self.learners.check)
        return {**eval_metrics(trajectories), "eval/worker_restarts": float(stats.restarts),
                "eval/hung_workers": float(stats.hung)}

    def save(self, run_dir: Path, step: int) -> None:
        """Checkpoint the learner group (rank 0 writes) with the weights version."""
        self.learners.save(run_dir, step, {"step": step, "version": self.version})

    def restore(self, run_dir: Path) -> int:
        """Load the newest checkpoint into every learner rank and push its weights to the engines."""
        path = newest_checkpoint(run_dir)
        start: int = self.learners.restore(path)
        self._sync_weights(start)  # one optimizer step per training step: the version is the step
        log.info("Resumed %s at step %d", path, start)
        return start

    def export(self, folder: Path) -> None:
        """Write the trained model (gathered from the learners) as a ``from_pretrained`` folder."""
        self.learners.export(folder)

    def close(self) -> None:
        """Stop every actor, free the placement groups, and shut Ray down if this run started it."""
        import ray
        from ray.util.placement_group import remove_placement_group

        for part in (self.pool, self.learners):
            if part is not None:
                part.shutdown()
        for group in self.groups:
            remove_placement_group(group)
        self.pool = self.learners = self.sync = None
        self.groups = []
        if self.started_ray:
            ray.shutdown()
            self.started_ray = False


def _chunk_seed(seed: int, step: int, sample_round: int = 0) -> int:
    """The base sampler seed of the step's round ``sample_round``; its chunk ``k`` samples with ``base + k``.

    Rounds after the first (dynamic sampling) start 1,009 seeds further each; a seed another step also
    uses then meets other prompts there, which correlates nothing that matters.
    """
    return (seed * 1_000_003 + step) * 10_007 + sample_round * 1_009


def _local_cpus(plan: PlacementPlan) -> int:
    """Logical CPUs for a local cluster: the plan's need even on a smaller machine (time-shared)."""
    return max(os.cpu_count() or 1, int(plan.totals().get("CPU", 1)))

