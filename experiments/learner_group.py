"""A group of learner actors training one model data-parallel over torch.distributed.

    group = LearnerGroup(spec, plan, placement_groups)     # ranks 0..N-1, process group set up
    metrics = group.update(samples)                        # one GRPO optimizer step on all ranks
    weights = group.weights()                              # object ref of rank 0's state dict

Each rank holds a full copy of the model and its optimizer (as in DDP). A step's samples are dealt
out to the ranks; each rank accumulates the gradient of *its* samples' token sums divided by the
response tokens of the *whole* step, the ranks sum their gradients with one all-reduce per bucket,
and every rank then clips and steps identically, so the ranks keep identical weights and the update
equals one learner's update on all the samples (up to the order of float additions).

This is DDP's gradient all-reduce done once after accumulation rather than through the
``DistributedDataParallel`` wrapper: the step's token-mean spans the ranks (a rank's share of tokens
differs from its share of samples), ranks hold different numbers of micro-batches (the wrapper needs
the same number of synchronising backward passes on every rank), and a rank may get no sample at all.

The process group uses NCCL between GPUs and gloo on CPU. Rank 0 writes the checkpoints; every rank
restores from them (multi-node runs need ``--out-dir`` on storage all nodes share).
"""

from __future__ import annotations

import copy
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from experiments.grpo import Sample
from experiments.placement import PlacementPlan

log = logging.getLogger(__name__)

BUCKET_ELEMENTS = 1 << 25  # gradient elements per all-reduce (128 MiB of float32), like DDP's buckets
LOSS_TERMS = ("loss", "pg_loss", "clip_frac", "entropy", "kl")


@dataclass(frozen=True)
class LearnerSpec:
    """How each rank builds its learner (plain data; it travels to the actors).

    Attributes:
        model: what :func:`agents.models.load_causal_lm` accepts.
        device: ``"cpu"`` or ``"cuda"`` (each rank sees its own GPU).
        config: the :class:`~experiments.learner_config.LearnerConfig` fields except ``pad_token_id``
            (taken from the tokenizer) and ``lora`` (built from ``lora_r``).
        lora_r: > 0 trains LoRA adapters of this rank.
        keep_checkpoints: newest checkpoints kept.
        torch_threads: torch threads per rank.
    """

    model: str
    device: str
    config: dict
    lora_r: int = 0
    keep_checkpoints: int = 2
    torch_threads: int = 1


class LearnerWorker:
    """One rank: a :class:`~experiments.learner.Learner` and its share of each step (one Ray actor)."""

    def __init__(self, spec: LearnerSpec, rank: int, world_size: int) -> None:
        import torch

        from agents.models import load_causal_lm
        from experiments.learner import Learner, LearnerConfig, LoraSettings

        torch.set_num_threads(spec.torch_threads)
        self.spec, self.rank, self.world_size = spec, rank, world_size
        model, self.tokenizer = load_causal_lm(spec.model, spec.device, dtype="float32")
        lora = LoraSettings(r=spec.lora_r, alpha=2.0 * spec.lora_r) if spec.lora_r else None
        reference = copy.deepcopy(model) if spec.config.get("kl_coef", 0) > 0 and lora is None else None
        config = LearnerConfig(**spec.config, pad_token_id=self.tokenizer.pad_token_id, lora=lora)
        self.learner = Learner(model, config, reference=reference)
        self.learner.model.eval()

    def address(self) -> tuple[str, int]:
        """This node's address and a free port, where rank 0 hosts the process group's rendezvous."""
        import ray

        with socket.socket() as probe:
            probe.bind(("", 0))
            return ray.util.get_node_ip_address(), probe.getsockname()[1]

    def join(self, backend: str, host: str, port: int) -> int:
        """Enter the process group (every rank calls this at the same time); returns the rank."""
        import torch.distributed as dist

        dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=self.rank,
                                world_size=self.world_size)
        return self.rank

    def step(self, samples: Sequence[Sample], step_tokens: int) -> dict[str, float]:
        """This rank's part of one optimizer step; ``step_tokens`` counts the whole step's response tokens.

        Returns:
            This rank's sums of the token-mean loss terms (they add up over ranks), ``response_tokens``
            and ``micro_batches`` (likewise), and ``grad_norm`` and ``lr`` (equal on every rank).
        """
        self.learner.optimizer.zero_grad(set_to_none=True)
        self.learner.model.train()
        metrics = self.learner.compute_gradients(samples, "grpo", step_tokens=step_tokens) if samples else {}
        self.learner.model.eval()
        if self.world_size > 1:
            all_reduce_gradients(self.learner.trainable)
        metrics.update(self.learner.apply_gradients())
        return metrics

    def weights(self) -> list[Any]:
        """``[ref]``: an object ref of the full state dict on CPU (LoRA merged into the base weights).

        Wrapped in a list so Ray hands the ref itself to the caller instead of fetching the weights
        through the driver; rollout workers fetch them from the object store.
        """
        import ray

        return [ray.put(full_state_dict(self.learner.model))]

    def save(self, run_dir: str, step: int, state: dict) -> str:
        from experiments.checkpoint import save_checkpoint

        path = save_checkpoint(run_dir, self.learner, step, tokenizer=self.tokenizer, state=state,
                               keep=self.spec.keep_checkpoints)
        return str(path)

    def restore(self, path: str) -> tuple[int, dict]:
        from experiments.checkpoint import load_checkpoint

        return load_checkpoint(path, self.learner)

    def export(self, folder: str) -> None:
        from experiments.checkpoint import export_model

        export_model(self.learner, Path(folder), tokenizer=self.tokenizer)

    def parameters(self) -> dict[str, Any]:
        """The trainable parameters (tests compare ranks)."""
        return {name: p.detach().cpu().clone() for name, p in self.learner.model.named_parameters() if p.requires_grad}

    def pid(self) -> int:
        return os.getpid()


def all_reduce_gradients(parameters: Sequence[Any], bucket_elements: int = BUCKET_ELEMENTS) -> None:
    """Sum every parameter's gradient over the ranks, in flat buckets (a missing gradient counts as 0)."""
    import torch
    import torch.distributed as dist

    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)  # a rank without samples still takes part in every all-reduce
    bucket: list[Any] = []
    size = 0
    for p in list(parameters) + [None]:
        if p is not None and (not bucket or size + p.numel() <= bucket_elements):
            bucket.append(p)
            size += p.numel()
            continue
        if bucket:
            flat = torch.cat([q.grad.reshape(-1) for q in bucket])
            dist.all_reduce(flat)
            for q, piece in zip(bucket, flat.split([q.numel() for q in bucket])):
                q.grad.copy_(piece.view_as(q.grad))
        bucket, size = ([p], p.numel()) if p is not None else ([], 0)


def full_state_dict(model: Any) -> dict[str, Any]:
    """The model's weights as an inference engine loads them: CPU tensors, LoRA adapters merged."""
    if hasattr(model, "peft_config") and hasattr(model, "get_base_model"):
        model = copy.deepcopy(model).merge_and_unload()
    return {name: tensor.detach().to("cpu") for name, tensor in model.state_dict().items()}


class LearnerFailure(RuntimeError):
    """A learner rank died; the run stops (its checkpoints stay as they were)."""


class LearnerGroup:
    """Learner ranks in the plan's learner slots, joined in one process group.

    Args:
        spec: how each rank builds its learner.
        plan: the placement (its ``learners`` slots and ``backend``).
        groups: the plan's placement groups.
    """

    def __init__(self, spec: LearnerSpec, plan: PlacementPlan, groups: Sequence[Any]) -> None:
        import ray

        from experiments.ray_workers import _scheduling

        remote = ray.remote(LearnerWorker)
        size = len(plan.learners)
        self.actors = [
            remote.options(**_scheduling(groups[s.node], s.bundle, s.cpus, s.gpus)).remote(spec, s.rank, size)
            for s in plan.learners
        ]
        if size > 1:
            [(host, port)] = self._call(self.actors[0].address.remote())
            self._call(*[a.join.remote(plan.backend, host, port) for a in self.actors])

    def update(self, samples: Sequence[Sample]) -> dict[str, float]:
        """One optimizer step on ``samples`` across the ranks; the step's token-mean metrics."""
        shards = [list(samples[r::len(self.actors)]) for r in range(len(self.actors))]
        tokens = sum(len(s.response_ids) for s in samples)
        results = self._call(*[a.step.remote(shard, tokens) for a, shard in zip(self.actors, shards)])
        metrics = {k: v for k, v in results[0].items() if k in ("grad_norm", "lr")}
        for key in LOSS_TERMS + ("response_tokens", "micro_batches"):
            if key in results[0] or any(key in r for r in results):
                metrics[key] = sum(r.get(key, 0.0) for r in results)
        return metrics

    def weights(self) -> Any:
        """An object ref of the current weights (rank 0's; every rank holds the same)."""
        return self._call(self.actors[0].weights.remote())[0][0]

    def save(self, run_dir: Path, step: int, state: dict) -> str:
        return self._call(self.actors[0].save.remote(str(run_dir), step, state))[0]

    def restore(self, path: Path) -> int:
        """Every rank loads the checkpoint; returns its step."""
        restored = self._call(*[a.restore.remote(str(path)) for a in self.actors])
        return int(restored[0][0])

    def export(self, folder: Path) -> None:
        self._call(self.actors[0].export.remote(str(folder)))

    def parameters(self) -> list[dict[str, Any]]:
        return self._call(*[a.parameters.remote() for a in self.actors])

    def shutdown(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []

    def _call(self, *refs: Any) -> list[Any]:
        """The refs' values in order; a dead rank stops the whole group at once.

        Refs are awaited as they finish, not in order: when one rank dies, the others may be blocked
        in an all-reduce waiting for it, and would never return.
        """
        import ray
        from ray.exceptions import RayActorError

        index = {ref: i for i, ref in enumerate(refs)}
        values: list[Any] = [None] * len(refs)
        pending = list(refs)
        while pending:
            [ready], pending = ray.wait(pending, num_returns=1)
            try:
                values[index[ready]] = ray.get(ready)
            except RayActorError as error:
                self.shutdown()  # frees the ranks still waiting in a collective for the dead one
                raise LearnerFailure(
                    f"A learner rank died ({type(error).__name__}); the run stops here. Its last checkpoint is "
                    "intact: continue with --resume (the actor's log under /tmp/ray/session_latest/logs says why "
                    "it died)."
                ) from error
        return values
