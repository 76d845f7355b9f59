"""agents/training/ray/placement.py: GPU plans for split and colocated runs, their text, and the cluster check
(Ray-free)."""

from __future__ import annotations

import pytest

from agents.training.ray.placement import PlacementError, check_cluster, plan_placement
from agents.training.ray.placement_text import describe_plan


def gpus_of(plan, role):
    slots = plan.learners if role == "learner" else plan.engines
    return sorted((s.node, g) for s in slots for g in s.gpu_ids)


def test_eight_gpus_split_one_node_half_learners_half_engines():
    plan = plan_placement(8)
    assert len(plan.nodes) == 1 and plan.node_totals(0) == {"GPU": 8.0, "CPU": 8.0}
    assert gpus_of(plan, "learner") == [(0, g) for g in range(4)]
    assert gpus_of(plan, "engine") == [(0, g) for g in range(4, 8)]
    assert plan.backend == "nccl" and all(s.gpus == 1.0 for s in plan.learners + plan.engines)


def test_sixteen_gpus_take_two_whole_nodes_and_no_gpu_is_used_twice():
    plan = plan_placement(16, tensor_parallel_size=2)
    assert len(plan.nodes) == 2 and plan.totals() == {"GPU": 16.0, "CPU": 16.0}
    used = gpus_of(plan, "learner") + gpus_of(plan, "engine")
    assert sorted(used) == [(n, g) for n in range(2) for g in range(8)]
    assert len(plan.engines) == 4 and all(len({plan.engines[0].node}) == 1 for _ in plan.engines)
    assert all(len(s.gpu_ids) == 2 and s.gpus == 0.0 for s in plan.engines)  # vLLM places its TP workers


def test_colocated_puts_a_learner_rank_and_an_engine_share_on_every_gpu():
    plan = plan_placement(8, mode="colocated", tensor_parallel_size=2)
    assert len(plan.learners) == 8 and len(plan.engines) == 4
    assert all(s.gpus == 0.5 for s in plan.learners)
    assert gpus_of(plan, "learner") == gpus_of(plan, "engine")
    assert plan.node_totals(0) == {"GPU": 8.0, "CPU": 16.0}  # CPUs for both actors of each GPU


def test_cpu_plan_has_a_bundle_per_actor_and_optional_embedding_service():
    plan = plan_placement(0, rollout_workers=2, num_learners=2, embedding_service=True)
    assert plan.backend == "gloo" and len(plan.nodes[0]) == 5
    bundles = sorted(s.bundle for s in plan.learners + plan.engines + plan.embedders)
    assert bundles == [0, 1, 2, 3, 4]
    assert [s.node for s in plan.embedders] == [0]


def test_the_dry_run_text_names_every_gpu_and_the_needs():
    text = describe_plan(plan_placement(16))
    assert "16 GPUs on 2 nodes of 8 GPUs" in text and "Needs: 16 GPU, 16 CPU" in text
    assert text.count("learner rank") == 9 and text.count("rollout engine") == 9  # headline + one per GPU
    assert "node 1" in text


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_gpus": -1}, "positive GPU count"),
        ({"num_gpus": 8, "mode": "shared"}, "choose split or colocated"),
        ({"num_gpus": 0, "mode": "colocated"}, "default split placement"),
        ({"num_gpus": 8, "rollout_workers": 2}, "for CPU runs"),
        ({"num_gpus": 12}, "multiple of 8"),
        ({"num_gpus": 8, "num_learners": 8}, "leaves 0 for engines"),
        ({"num_gpus": 8, "num_learners": 3, "tensor_parallel_size": 2}, "positive multiple"),
        ({"num_gpus": 16, "num_learners": 6, "tensor_parallel_size": 5}, "across two nodes"),
        ({"num_gpus": 8, "mode": "colocated", "num_learners": 4}, "one learner rank on each"),
    ],
)
def test_impossible_plans_say_what_to_change(kwargs, message):
    num_gpus = kwargs.pop("num_gpus")
    with pytest.raises(PlacementError, match=message):
        plan_placement(num_gpus, **kwargs)


def test_the_cluster_check_fails_on_missing_gpus_and_warns_on_short_cpus():
    plan = plan_placement(16)
    errors, _ = check_cluster(plan, [{"CPU": 64, "GPU": 8}])
    assert len(errors) == 1 and "needs 8 GPUs on one node" in errors[0]
    assert check_cluster(plan, [{"CPU": 64, "GPU": 8}, {"CPU": 64, "GPU": 8}]) == ([], [])
    errors, warnings = check_cluster(plan_placement(0, rollout_workers=3), [{"CPU": 2}])
    assert errors == [] and "share cores" in warnings[0]
