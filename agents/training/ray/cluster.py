"""The Ray cluster: joining or starting it, what its nodes offer, placement groups, and how to tell an
actor's death from its error. Ray itself is imported inside the functions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents.training.errors import ClusterError
from agents.training.ray.placement import PlacementPlan

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]

def connect(address: str | None, *, num_cpus: int | None = None, log_to_driver: bool = True) -> bool:
    """Join the cluster at ``address`` or start a local one; returns whether this call started Ray.

    A local cluster is given ``num_cpus`` logical CPUs (the plan's need; more than the cores means
    the actors time-share them). Its workers inherit this process's environment, so the repository is
    put on their ``PYTHONPATH``: they import the same code as the driver. On an existing cluster the
    code must be installed on every node (see docs/DISTRIBUTED.md). ``log_to_driver`` forwards the
    actors' output to this process.
    """
    import ray

    if ray.is_initialized():
        return False
    if address:
        try:
            ray.init(address=address, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ClusterError(
                f"--address {address}: cannot join a Ray cluster there ({error}). Start one with `ray start --head` "
                "on the head node and `ray start --address HEAD:6379` on the others, or drop --address for a "
                "local run."
            ) from None
        return True
    paths = [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    for attempt in (1, 2):
        try:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver)
            return True
        except Exception as error:  # Ray raises a bare Exception when its raylet is slow to register
            ray.shutdown()
            if attempt == 2 or "timed out during startup" not in str(error):
                raise
            # Ray waits a fixed 30 s for its raylet; a machine busy with other work can take longer once.
            log.warning("local Ray did not start in time (%s); trying once more", error)
    return True


def cluster_nodes() -> list[dict[str, float]]:
    """The resources of each alive node of the connected cluster."""
    import ray

    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def local_resources() -> list[dict[str, float]]:
    """What a local Ray cluster on this machine would offer: its cores and visible GPUs."""
    gpus = 0
    try:
        import torch

        gpus = torch.cuda.device_count()
    except ImportError:
        pass
    node = {"CPU": float(os.cpu_count() or 1)}
    if gpus:
        node["GPU"] = float(gpus)
    return [node]


def create_placement_groups(plan: PlacementPlan, timeout_s: float = 120.0) -> list[Any]:
    """One placement group per plan node (GPU nodes packed strictly onto one machine); waits until
    all are placed.

    Raises:
        ClusterError: the cluster cannot place them within ``timeout_s`` (the message says what is needed).
    """
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    groups = [
        placement_group([dict(b) for b in bundles], strategy="STRICT_PACK" if plan.num_gpus else "PACK")
        for bundles in plan.nodes
    ]
    try:
        ray.get([g.ready() for g in groups], timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        for group in groups:
            remove_placement_group(group)
        needs = "; ".join(f"node {n}: {plan.node_totals(n)}" for n in range(len(plan.nodes)))
        raise ClusterError(
            f"The cluster could not place the plan within {timeout_s:.0f} s (needs {needs}; it has "
            f"{cluster_nodes()}). Check with --dry-run, then lower --num-gpus or add nodes."
        ) from None
    return groups


def actor_deaths() -> tuple[type[Exception], ...]:
    """The errors of a call whose actor died: it crashed or was killed (``RayActorError``), or Ray's
    memory monitor killed it to save the node (``OutOfMemoryError``, which is not a ``RayActorError``)."""
    from ray.exceptions import OutOfMemoryError, RayActorError

    return RayActorError, OutOfMemoryError


def death_text(error: Exception) -> str:
    """Why an actor died, in one line: the error its constructor raised (Ray's message ends with it),
    or the kind of death (killed, out of memory)."""
    if getattr(error, "actor_init_failed", False):
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return f"it failed to start: {lines[-1]}" if lines else "it failed to start"
    return type(error).__name__


def failed_to_start(error: Exception) -> bool:
    """Whether the actor died because its constructor raised: a fault that a new actor would repeat."""
    return bool(getattr(error, "actor_init_failed", False))


def wait_in_turn(refs: Sequence[Any], on_death: Callable[[Exception], BaseException]) -> list[Any]:
    """The refs' values in order, awaited as they finish; an actor that died raises ``on_death(error)``.

    Not awaited in order: when one member of a collective dies, the others block waiting for it and
    never return, so the error must be seen as soon as it comes.
    """
    import ray

    index = {ref: i for i, ref in enumerate(refs)}
    values: list[Any] = [None] * len(refs)
    pending = list(refs)
    while pending:
        [ready], pending = ray.wait(pending, num_returns=1)
        try:
            values[index[ready]] = ray.get(ready)
        except actor_deaths() as error:
            raise on_death(error) from error
    return values


def scheduling(group: Any, bundle: int, cpus: float, gpus: float) -> dict[str, Any]:
    """Actor options that place one actor in bundle ``bundle`` of placement group ``group``.

    Args:
        group: the placement group.
        bundle: the bundle's index in ``group``.
        cpus: CPUs the actor reserves.
        gpus: GPUs (or a share of one) the actor reserves.

    Returns:
        Keyword arguments for ``RemoteClass.options(...)``.
    """
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    strategy = PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=bundle)
    return {"num_cpus": cpus, "num_gpus": gpus, "scheduling_strategy": strategy}
