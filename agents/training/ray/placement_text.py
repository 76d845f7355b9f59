"""A placement plan as the text ``ray_train.py --dry-run`` prints."""

from __future__ import annotations

from agents.training.ray.placement import PlacementPlan, Slot


def describe_plan(plan: PlacementPlan) -> str:
    """Mode, nodes, what runs on each GPU (or CPU bundle), and the resources to reserve."""
    lines = [_headline(plan)]
    for node in range(len(plan.nodes)):
        totals = plan.node_totals(node)
        lines.append(f"  node {node}: placement group of {len(plan.nodes[node])} bundles, {_amounts(totals)}")
        lines += [f"    {line}" for line in _occupants(plan, node)]
    lines.append(f"Needs: {_amounts(plan.totals())} "
                 f"({len(plan.nodes)} placement group{'s' if len(plan.nodes) > 1 else ''}, one per node).")
    return "\n".join(lines)


def _headline(plan: PlacementPlan) -> str:
    engines = f"{len(plan.engines)} rollout engine{'s' if len(plan.engines) != 1 else ''}"
    learners = f"{len(plan.learners)} learner rank{'s' if len(plan.learners) != 1 else ''} ({plan.backend})"
    if plan.num_gpus == 0:
        return f"Placement: CPU only, {engines}, {learners}, on {len(plan.nodes)} node."
    nodes = f"{len(plan.nodes)} node{'s' if len(plan.nodes) > 1 else ''} of {plan.gpus_per_node} GPUs"
    return (f"Placement: {plan.mode} mode, {plan.num_gpus} GPUs on {nodes}; {engines} "
            f"(tensor parallel {plan.tensor_parallel_size}), {learners}.")


def _occupants(plan: PlacementPlan, node: int) -> list[str]:
    """One line per bundle: what runs in it."""
    slots = [s for s in plan.learners + plan.engines + plan.embedders if s.node == node]
    lines = []
    for bundle, resources in enumerate(plan.nodes[node]):
        here = [_label(s, bundle) for s in slots if bundle in _bundles_of(s)]
        where = f"GPU {bundle}" if "GPU" in resources else f"bundle {bundle}"
        lines.append(f"{where}: {', '.join(here) or 'free'} [{_amounts(resources)}]")
    return lines


def _bundles_of(slot: Slot) -> tuple[int, ...]:
    return slot.gpu_ids or (slot.bundle,)


def _label(slot: Slot, bundle: int) -> str:
    names = {"learner": "learner rank", "engine": "rollout engine", "embedding": "embedding service"}
    text = f"{names[slot.role]} {slot.rank}"
    if len(slot.gpu_ids) > 1:
        text += f" (tensor-parallel shard {slot.gpu_ids.index(bundle)} of {len(slot.gpu_ids)})"
    if slot.gpus and slot.gpus < 1:
        text += f" ({slot.gpus:g} GPU)"
    return text


def _amounts(resources: dict[str, float]) -> str:
    return ", ".join(f"{resources[name]:g} {name}" for name in ("GPU", "CPU") if name in resources)
