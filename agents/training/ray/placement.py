"""Where each actor of a distributed run goes: GPUs split between rollout engines and learners.

    plan = plan_placement(8)                      # one node: 4 learner GPUs, 4 engines of 1 GPU
    plan = plan_placement(16, tensor_parallel_size=2)   # two nodes: 8 learners, 4 engines of 2 GPUs
    plan = plan_placement(8, mode="colocated")    # every GPU holds a learner rank and an engine share
    plan = plan_placement(0, rollout_workers=2)   # CPU only: 2 rollout workers, 1 learner

Modes:

- ``split``: learners and engines own separate GPUs (the first ``num_learners`` GPUs train, the rest
  generate), so generation and training never compete for memory.
- ``colocated``: one learner rank per GPU and one engine per ``tensor_parallel_size`` GPUs on the same
  GPUs (each takes half of the GPU in Ray's accounting); the engines release their memory while the
  learners update (vLLM's sleep mode) and take it back to generate.

A plan is plain data (no Ray here): per node, the list of placement-group bundles, and for every actor
the node and bundle it is scheduled into. ``agents/training/ray/workers.py`` turns it into Ray placement
groups, one per node; :func:`check_cluster` compares it with a cluster's nodes for ``--dry-run``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from atommem_env.errors import ConfigError

MODES = ("split", "colocated")


class PlacementError(ConfigError):
    """A plan that cannot be made or does not fit the cluster (the message says what to change)."""


@dataclass(frozen=True)
class Slot:
    """Where one actor runs.

    Attributes:
        role: ``"learner"``, ``"engine"`` (a rollout worker and its inference engine) or ``"embedding"``.
        rank: the actor's number within its role.
        node: index into :attr:`PlacementPlan.nodes`.
        bundle: index of the bundle within that node's placement group.
        gpus: GPU share the actor reserves inside the bundle (0 on CPU; 0.5 when colocated).
        gpu_ids: the node-local GPUs the actor uses (a tensor-parallel engine spans several bundles,
            one per GPU; its actor sits in the first).
        cpus: CPUs the actor reserves inside the bundle.
    """

    role: str
    rank: int
    node: int
    bundle: int
    gpus: float = 0.0
    gpu_ids: tuple[int, ...] = ()
    cpus: float = 1.0


@dataclass(frozen=True)
class PlacementPlan:
    """Bundles per node and the slot of every actor (see the module docstring)."""

    mode: str
    num_gpus: int
    gpus_per_node: int
    tensor_parallel_size: int
    nodes: tuple[tuple[dict[str, float], ...], ...]
    learners: tuple[Slot, ...]
    engines: tuple[Slot, ...]
    embedders: tuple[Slot, ...] = field(default=())

    @property
    def backend(self) -> str:
        """The learners' torch.distributed backend: NCCL between GPUs, gloo on CPU."""
        return "nccl" if self.num_gpus else "gloo"

    def node_totals(self, node: int) -> dict[str, float]:
        """Resources the placement group of ``node`` reserves."""
        totals: dict[str, float] = {}
        for bundle in self.nodes[node]:
            for name, amount in bundle.items():
                totals[name] = totals.get(name, 0.0) + amount
        return totals

    def totals(self) -> dict[str, float]:
        """Resources the whole plan reserves."""
        totals: dict[str, float] = {}
        for node in range(len(self.nodes)):
            for name, amount in self.node_totals(node).items():
                totals[name] = totals.get(name, 0.0) + amount
        return totals


def plan_placement(
    num_gpus: int,
    *,
    mode: str = "split",
    gpus_per_node: int = 8,
    tensor_parallel_size: int = 1,
    num_learners: int | None = None,
    rollout_workers: int | None = None,
    cpus_per_actor: int = 1,
    embedding_service: bool = False,
) -> PlacementPlan:
    """Plan a run on ``num_gpus`` GPUs (0: CPU actors only).

    Args:
        mode: ``"split"`` or ``"colocated"`` (GPU runs only).
        gpus_per_node: GPUs on each node of the cluster; a run larger than one node takes whole nodes.
        tensor_parallel_size: GPUs per inference engine (vLLM); engines never straddle nodes.
        num_learners: learner ranks. Default: half the GPUs in split mode, every GPU when colocated,
            1 on CPU.
        rollout_workers: rollout workers of a CPU run (default 1). On GPUs the count follows from the
            engine GPUs and ``tensor_parallel_size``.
        cpus_per_actor: CPUs reserved for each learner, rollout worker and embedding service.
        embedding_service: add one embedding-service bundle on every node that hosts engines.

    Raises:
        PlacementError: the numbers do not make a plan (the message says which to change).
    """
    _check_counts(num_gpus, mode, gpus_per_node, tensor_parallel_size, num_learners, rollout_workers, cpus_per_actor)
    if num_gpus == 0:
        plan = _cpu_plan(num_learners or 1, rollout_workers or 1, cpus_per_actor)
    elif mode == "split":
        plan = _split_plan(num_gpus, gpus_per_node, tensor_parallel_size, num_learners, cpus_per_actor)
    else:
        plan = _colocated_plan(num_gpus, gpus_per_node, tensor_parallel_size, num_learners, cpus_per_actor)
    return _with_embedders(plan, cpus_per_actor) if embedding_service else plan


def _check_counts(num_gpus: int, mode: str, per_node: int, tp: int, learners: int | None, workers: int | None,
                  cpus: int) -> None:
    checks = [
        (num_gpus >= 0, f"--num-gpus {num_gpus}: pass 0 (CPU only) or a positive GPU count."),
        (mode in MODES, f"--placement {mode!r}: choose {' or '.join(MODES)}."),
        (per_node >= 1, f"--gpus-per-node {per_node}: need at least 1."),
        (tp >= 1, f"--tensor-parallel-size {tp}: need at least 1."),
        (learners is None or learners >= 1, f"--num-learners {learners}: need at least 1."),
        (workers is None or workers >= 1, f"--rollout-workers {workers}: need at least 1."),
        (cpus >= 1, f"--cpus-per-actor {cpus}: need at least 1."),
    ]
    problems = [message for ok, message in checks if not ok]
    if num_gpus == 0 and not problems:
        if mode != "split":
            problems.append("--placement colocated shares GPUs between engines and learners; with --num-gpus 0 "
                            "use the default split placement.")
        if tp != 1:
            problems.append(f"--tensor-parallel-size {tp} needs GPUs; with --num-gpus 0 leave it at 1.")
    if num_gpus > 0 and workers is not None:
        problems.append(f"--rollout-workers {workers} is for CPU runs; on GPUs the engines follow from the engine "
                        "GPUs and --tensor-parallel-size (drop --rollout-workers).")
    if num_gpus > per_node and num_gpus % per_node:
        problems.append(f"--num-gpus {num_gpus} is more than one node of {per_node} GPUs but not whole nodes; "
                        f"use a multiple of {per_node} (or set --gpus-per-node).")
    if problems:
        raise PlacementError("Cannot plan the placement:\n  " + "\n  ".join(problems))


def _cpu_plan(learners: int, workers: int, cpus: int) -> PlacementPlan:
    bundles = tuple({"CPU": float(cpus)} for _ in range(learners + workers))
    return PlacementPlan(
        mode="split", num_gpus=0, gpus_per_node=0, tensor_parallel_size=1, nodes=(bundles,),
        learners=tuple(Slot("learner", r, 0, r, cpus=cpus) for r in range(learners)),
        engines=tuple(Slot("engine", e, 0, learners + e, cpus=cpus) for e in range(workers)),
    )


def _split_plan(num_gpus: int, per_node: int, tp: int, learners: int | None, cpus: int) -> PlacementPlan:
    learners = learners if learners is not None else max(1, num_gpus // 2)
    engine_gpus = num_gpus - learners
    if engine_gpus < tp or engine_gpus % tp:
        raise PlacementError(
            f"Split placement of {num_gpus} GPUs with {learners} learner GPUs leaves {engine_gpus} for engines of "
            f"--tensor-parallel-size {tp}; the engine GPUs must be a positive multiple of it. Change "
            "--num-learners or --tensor-parallel-size, or use --placement colocated."
        )
    learner_slots = tuple(_gpu_slot("learner", r, r, per_node, 1.0, cpus) for r in range(learners))
    engine_slots = tuple(
        _engine_slot(e, learners + e * tp, tp, per_node, 1.0, cpus) for e in range(engine_gpus // tp)
    )
    return PlacementPlan("split", num_gpus, per_node, tp, _gpu_nodes(num_gpus, per_node, cpus),
                         learner_slots, engine_slots)


def _colocated_plan(num_gpus: int, per_node: int, tp: int, learners: int | None, cpus: int) -> PlacementPlan:
    if learners is not None and learners != num_gpus:
        raise PlacementError(
            f"--placement colocated runs one learner rank on each of the {num_gpus} GPUs; drop --num-learners "
            f"{learners} or use the split placement."
        )
    if num_gpus % tp:
        raise PlacementError(f"--num-gpus {num_gpus} is not a multiple of --tensor-parallel-size {tp}.")
    # Two actors share each GPU bundle, so each reserves half of it (Ray's fractional GPUs) and the
    # bundle holds CPUs for both.
    learner_slots = tuple(_gpu_slot("learner", r, r, per_node, 0.5, cpus) for r in range(num_gpus))
    engine_slots = tuple(_engine_slot(e, e * tp, tp, per_node, 0.5, cpus) for e in range(num_gpus // tp))
    return PlacementPlan("colocated", num_gpus, per_node, tp, _gpu_nodes(num_gpus, per_node, 2 * cpus),
                         learner_slots, engine_slots)


def _gpu_nodes(num_gpus: int, per_node: int, cpus: int) -> tuple[tuple[dict[str, float], ...], ...]:
    count = -(-num_gpus // per_node)
    on_node = [min(per_node, num_gpus - n * per_node) for n in range(count)]
    return tuple(tuple({"GPU": 1.0, "CPU": float(cpus)} for _ in range(gpus)) for gpus in on_node)


def _gpu_slot(role: str, rank: int, gpu: int, per_node: int, share: float, cpus: int) -> Slot:
    return Slot(role, rank, gpu // per_node, gpu % per_node, share, (gpu % per_node,), float(cpus))


def _engine_slot(rank: int, first_gpu: int, tp: int, per_node: int, share: float, cpus: int) -> Slot:
    last_gpu = first_gpu + tp - 1
    if first_gpu // per_node != last_gpu // per_node:
        raise PlacementError(
            f"Engine {rank} would span GPUs {first_gpu}-{last_gpu}, across two nodes of {per_node} GPUs; tensor "
            "parallelism needs one node. Change --num-learners so the engines start on a multiple of "
            "--tensor-parallel-size, or lower --tensor-parallel-size."
        )
    local = tuple(range(first_gpu % per_node, first_gpu % per_node + tp))
    # With tensor parallelism vLLM starts one worker per GPU in the engine's bundles itself; the
    # engine actor only coordinates them, so it reserves a GPU share only when it runs the model alone.
    return Slot("engine", rank, first_gpu // per_node, local[0], share if tp == 1 else 0.0, local, float(cpus))


def _with_embedders(plan: PlacementPlan, cpus: int) -> PlacementPlan:
    """One embedding-service bundle on every node that hosts rollout engines."""
    nodes = [list(bundles) for bundles in plan.nodes]
    embedders: list[Slot] = []
    for node in sorted({slot.node for slot in plan.engines}):
        embedders.append(Slot("embedding", len(embedders), node, len(nodes[node]), cpus=float(cpus)))
        nodes[node].append({"CPU": float(cpus)})
    return PlacementPlan(plan.mode, plan.num_gpus, plan.gpus_per_node, plan.tensor_parallel_size,
                         tuple(tuple(b) for b in nodes), plan.learners, plan.engines, tuple(embedders))


# ---------------------------------------------------------------------------------------------------
# Fitting a plan onto a cluster


def check_cluster(plan: PlacementPlan, cluster: Sequence[Mapping[str, float]]) -> tuple[list[str], list[str]]:
    """Whether each node's placement group fits a distinct node of ``cluster``.

    Args:
        cluster: the resources of each alive node (``{"CPU": 16, "GPU": 8, ...}``).

    Returns:
        ``(errors, warnings)``: errors when GPUs are missing (the run could not start); warnings when
        only CPUs are short, which a CPU run survives by time-sharing the cores (a local run asks Ray
        for as many logical CPUs as the plan needs).
    """
    free = [dict(node) for node in cluster]
    errors: list[str] = []
    warnings: list[str] = []
    order = sorted(range(len(plan.nodes)), key=lambda n: -plan.node_totals(n).get("GPU", 0.0))
    for n in order:
        need = plan.node_totals(n)
        host = _best_host(free, need)
        if host is None:
            errors.append(_shortage(n, need, free))
            continue
        cpu_short = need.get("CPU", 0.0) - free[host].get("CPU", 0.0)
        if cpu_short > 0:
            warnings.append(
                f"plan node {n} needs {need['CPU']:g} CPUs and the node has {free[host].get('CPU', 0.0):g}; its "
                "actors will share cores (slower, not wrong)."
            )
        for name, amount in need.items():
            free[host][name] = free[host].get(name, 0.0) - amount
    return errors, warnings


def _best_host(free: list[dict[str, float]], need: Mapping[str, float]) -> int | None:
    """The node with the fewest spare GPUs that still has the GPUs ``need`` asks for."""
    gpus = need.get("GPU", 0.0)
    hosts = [i for i, node in enumerate(free) if node.get("GPU", 0.0) >= gpus]
    return min(hosts, key=lambda i: (free[i].get("GPU", 0.0), -free[i].get("CPU", 0.0))) if hosts else None


def _shortage(n: int, need: Mapping[str, float], free: list[dict[str, float]]) -> str:
    most = max((node.get("GPU", 0.0) for node in free), default=0.0)
    return (
        f"plan node {n} needs {need.get('GPU', 0.0):g} GPUs on one node, and the cluster's free nodes have at most "
        f"{most:g}. Lower --num-gpus, set --gpus-per-node to the cluster's GPUs per node, or add nodes "
        "(ray start --address ... on each)."
    )
