"""A group of learner actors training one model data-parallel over torch.distributed.

    group = LearnerGroup(spec, plan, placement_groups)     # ranks 0..N-1, process group set up
    metrics = group.update(samples)                        # one GRPO optimizer step on all ranks
    weights = group.weights()                              # object ref of rank 0's state dict

Two strategies (``LearnerSpec.strategy``), both equal to one learner's update on all the samples
(up to the order of float additions). A step's samples are dealt out to the ranks; each rank
accumulates the gradient of *its* samples' token sums divided by the response tokens of the *whole*
step, and the ranks' gradients are summed.

- ``replicate``: each rank holds a full copy of the model and its optimizer (as in DDP); the ranks sum
  their gradients with one all-reduce per bucket after accumulation, and every rank clips and steps
  identically. This is DDP's gradient all-reduce done once, not the ``DistributedDataParallel``
  wrapper: the token-mean spans the ranks, ranks hold different numbers of micro-batches (the wrapper
  needs the same number of synchronising backward passes on every rank), a rank may get no sample.
- ``fsdp``: parameters, gradients and optimizer state are sharded over the ranks with torch FSDP2
  (:mod:`agents.training.fsdp`); gradients are reduce-scattered in every backward. Each forward and
  backward holds collectives, so every rank runs the busiest rank's number of passes, the missing
  ones on zero-weight fillers. Weight sync, checkpoints and exports gather the full state onto rank
  0, so every rank takes part in them.

The process group uses NCCL between GPUs and gloo on CPU. Rank 0 writes the checkpoints; every rank
restores from them (multi-node runs need ``--out-dir`` on storage all nodes share).
"""

from __future__ import annotations

import copy
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.training.errors import RunStopped
from agents.training.grpo import Sample
from agents.training.ray.placement import PlacementPlan

if TYPE_CHECKING:
    from agents.training.ray.weight_sync import TensorSpec  # imports torch

log = logging.getLogger(__name__)

BUCKET_ELEMENTS = 1 << 25  # gradient elements per all-reduce (128 MiB of float32), like DDP's buckets
# Metrics that each rank reports as its share of the step's (they add up over the ranks).
SUMMED = ("loss", "pg_loss", "clip_frac", "dual_clip_frac", "entropy", "sampler_abs_log_ratio", "kl",
          "forwarded_tokens", "micro_batches")


@dataclass(frozen=True)
class LearnerSpec:
    """How each rank builds its learner (plain data; it travels to the actors).

    Attributes:
        model: what :func:`agents.models.load_causal_lm` accepts.
        device: ``"cpu"`` or ``"cuda"`` (each rank sees its own GPU).
        config: the :class:`~agents.training.learner_config.LearnerConfig` fields except ``pad_token_id``
            (taken from the tokenizer) and ``lora`` (built from ``lora_r``).
        lora_r: > 0 trains LoRA adapters of this rank.
        keep_checkpoints: newest checkpoints kept.
        torch_threads: torch threads per rank.
        strategy: ``"replicate"`` or ``"fsdp"`` (see the module docstring).
    """

    model: str
    device: str
    config: dict
    lora_r: int = 0
    keep_checkpoints: int = 2
    torch_threads: int = 1
    strategy: str = "replicate"


class LearnerWorker:
    """One rank: a :class:`~agents.training.learner.Learner` and its share of each step (one Ray actor)."""

    def __init__(self, spec: LearnerSpec, rank: int, world_size: int) -> None:
        import torch

        torch.set_num_threads(spec.torch_threads)
        self.spec, self.rank, self.world_size = spec, rank, world_size
        self.sharded = spec.strategy == "fsdp"
        self.channel: Any = None  # the weight channel to vLLM engines (collective sync)
        self.specs: list[TensorSpec] = []  # what each update through it sends
        if not self.sharded:
            self._build()  # sharding needs the process group: an FSDP rank builds in join()

    def _build(self) -> None:
        from agents.models import load_causal_lm
        from agents.training.learner import Learner, LearnerConfig, LoraSettings

        spec = self.spec
        # FSDP loads on the CPU: fully_shard moves one layer at a time to the GPU and keeps only this rank's shard.
        model, self.tokenizer = load_causal_lm(spec.model, "cpu" if self.sharded else spec.device, dtype="float32")
        lora = LoraSettings(r=spec.lora_r, alpha=2.0 * spec.lora_r) if spec.lora_r else None
        reference = copy.deepcopy(model) if spec.config.get("kl_coef", 0) > 0 and lora is None else None
        config = LearnerConfig(**spec.config, pad_token_id=self.tokenizer.pad_token_id, lora=lora)
        if self.sharded:
            from agents.training.fsdp import shard

            shard(model, device=spec.device, bf16=config.bf16)
            if reference is not None:
                shard(reference, device=spec.device, bf16=config.bf16, frozen=True)
        self.learner = Learner(model, config, reference=reference)
        self.learner.model.eval()

    def address(self) -> tuple[str, int]:
        """This node's address and a free port, where rank 0 hosts a rendezvous (the process group's,
        or the weight channel's)."""
        import ray

        with socket.socket() as probe:
            probe.bind(("", 0))
            return ray.util.get_node_ip_address(), probe.getsockname()[1]

    def join(self, backend: str, host: str, port: int) -> int:
        """Enter the process group (every rank calls this at the same time); returns the rank."""
        import torch.distributed as dist

        dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=self.rank,
                                world_size=self.world_size)
        if self.sharded:
            self._build()
        return self.rank

    def step(self, samples: Sequence[Sample], step_tokens: int, forwarded_tokens: int,
             passes: int | None = None) -> dict[str, float]:
        """This rank's part of one optimizer step: it forwards ``samples``.

        Args:
            step_tokens: the whole step's response tokens (the loss's denominator).
            forwarded_tokens: the response tokens all ranks forward.
            passes: forward/backward passes every rank runs (sharded ranks; see
                :func:`agents.training.batching.micro_batch_passes`); ``None``: this rank's micro-batches.

        Returns:
            This rank's shares of the ``SUMMED`` metrics, and ``grad_norm`` and ``lr`` (equal on every rank).
        """
        self.learner.optimizer.zero_grad(set_to_none=True)
        self.learner.model.train()
        metrics = self.learner.compute_gradients(samples, "grpo", step_tokens=step_tokens,
                                                 forwarded_tokens=forwarded_tokens, passes=passes)
        self.learner.model.eval()
        if self.world_size > 1 and not self.sharded:  # FSDP reduce-scattered them in each backward
            all_reduce_gradients(self.learner.trainable)
        metrics.update(self.learner.apply_gradients())
        return metrics

    def weights(self) -> list[Any]:
        """``[ref]``: an object ref of the full state dict on CPU (LoRA merged into the base weights);
        ``[None]`` on the ranks > 0 of a sharded model, which only help gather it.

        Wrapped in a list so Ray hands the ref itself to the caller instead of fetching the weights
        through the driver; rollout workers fetch them from the object store.
        """
        import ray

        state = full_state_dict(self.learner.model)
        return [ray.put(state) if self.rank == 0 else None]

    def open_weight_channel(self, host: str, port: int, world_size: int, factory: str) -> list[tuple]:
        """Rank 0 joins the weight channel to the engines as its rank 0 (a collective with the engines'
        workers); returns the manifest of the tensors every update sends."""
        from agents.training.ray.weight_sync import manifest, open_channel

        self.channel = open_channel(factory, host, port, 0, world_size, self.learner.device)
        self.specs = manifest(self.learner.model.state_dict().items())  # a shard's metadata is its whole tensor's
        return self.specs

    def send_weights(self, version: int) -> int:
        """Rank 0 broadcasts the weights into the channel; the other ranks of a sharded model help
        all-gather each tensor. Returns the tensors sent (0 on ranks > 0)."""
        from agents.training.fsdp import full_tensors
        from agents.training.ray.weight_sync import send

        tensors = full_tensors(self.learner.model)
        if self.rank != 0:
            for _ in tensors:  # takes part in each tensor's all-gather, in rank 0's order
                pass
            return 0
        return send(self.channel, tensors, self.specs, version, self.learner.device)

    def save(self, run_dir: str, step: int, state: dict) -> str:
        """Save this rank's learner as checkpoint ``step`` under ``run_dir``; returns the checkpoint's folder."""
        from agents.training.checkpoint import save_checkpoint

        path = save_checkpoint(run_dir, self.learner, step, tokenizer=self.tokenizer, state=state,
                               keep=self.spec.keep_checkpoints)
        return str(path)

    def restore(self, path: str) -> tuple[int, dict]:
        """Load the checkpoint at ``path`` into this rank's learner; returns its step and saved run state."""
        from agents.training.checkpoint import load_checkpoint

        return load_checkpoint(path, self.learner)

    def export(self, folder: str) -> None:
        """Write the model (LoRA adapters merged) and tokenizer into ``folder``, loadable by transformers."""
        from agents.training.checkpoint import export_model

        export_model(self.learner, Path(folder), tokenizer=self.tokenizer)

    def parameters(self) -> dict[str, Any]:
        """The trainable parameters, whole (tests compare ranks; sharded ones are all-gathered)."""
        return {name: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().cpu().clone()
                for name, p in self.learner.model.named_parameters() if p.requires_grad}

    def pid(self) -> int:
        """This actor's process id (tests kill it to simulate a dead rank)."""
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
            for q, piece in zip(bucket, flat.split([q.numel() for q in bucket]), strict=True):
                q.grad.copy_(piece.view_as(q.grad))
        bucket, size = ([p], p.numel()) if p is not None else ([], 0)


def full_state_dict(model: Any) -> dict[str, Any]:
    """The model's weights as an inference engine loads them: CPU tensors, LoRA adapters merged.

    A sharded model's are gathered onto rank 0 (every rank must call this; the others get ``{}``).
    """
    from agents.training.fsdp import gather_state, is_sharded

    if is_sharded(model):
        return gather_state(model)[0]
    if hasattr(model, "peft_config") and hasattr(model, "get_base_model"):
        model = copy.deepcopy(model).merge_and_unload()
    return {name: tensor.detach().to("cpu") for name, tensor in model.state_dict().items()}


class LearnerFailure(RunStopped, RuntimeError):
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

        from agents.training.fsdp import strategy_problems
        from agents.training.learner_config import LearnerConfig
        from agents.training.ray.cluster import scheduling
        from atommem_env.errors import ConfigError

        size = len(plan.learners)
        problems = strategy_problems(spec.strategy, size, spec.lora_r)
        if problems:
            raise ConfigError("\n".join(problems))
        self.sharded = spec.strategy == "fsdp"
        self.token_budget = spec.config.get("micro_batch_tokens", LearnerConfig.micro_batch_tokens)
        self.kl_coef = spec.config.get("kl_coef", LearnerConfig.kl_coef)
        remote = ray.remote(LearnerWorker)
        # Ray types an actor method as "function or ActorMethod" (no .remote), so the handles are Any here.
        self.actors: list[Any] = [
            remote.options(**scheduling(groups[s.node], s.bundle, s.cpus, s.gpus)).remote(spec, s.rank, size)
            for s in plan.learners
        ]
        self.pings: list[Any] = []  # one call waiting in each rank's queue (see check)
        if size > 1:
            [(host, port)] = self._call(self.actors[0].address.remote())
            self._call(*[a.join.remote(plan.backend, host, port) for a in self.actors])

    def update(self, samples: Sequence[Sample]) -> dict[str, float]:
        """One optimizer step on ``samples`` across the ranks; the step's metrics, as
        :meth:`~agents.training.learner.Learner.grpo_step` gives them for one learner.

        Only the samples that can change the gradient are dealt out
        (:func:`~agents.training.grpo.samples_to_forward`), so no rank spends passes on the others.
        """
        from agents.training.batching import micro_batch_passes
        from agents.training.grpo import response_tokens, samples_to_forward

        forwarded = samples_to_forward(samples, kl_coef=self.kl_coef)
        shards = [forwarded[r::len(self.actors)] for r in range(len(self.actors))]
        passes = micro_batch_passes(shards, self.token_budget) if self.sharded else None
        steps = [a.step.remote(shard, response_tokens(samples), response_tokens(forwarded), passes)
                 for a, shard in zip(self.actors, shards, strict=True)]
        results = self._call(*steps)
        metrics = {k: v for k, v in results[0].items() if k in ("grad_norm", "lr")}
        metrics.update({key: sum(r[key] for r in results) for key in SUMMED if key in results[0]})
        metrics.update(response_tokens=float(response_tokens(samples)),
                       skipped_samples=float(len(samples) - len(forwarded)))
        return metrics

    def weights(self) -> Any:
        """An object ref of the current weights (rank 0's; every rank holds the same or a shard)."""
        return self._call(*[a.weights.remote() for a in self._writers()])[0][0]

    def channel_address(self) -> tuple[str, int]:
        """Where the weight channel to the engines meets: rank 0's node and a free port there."""
        return self._call(self.actors[0].address.remote())[0]

    def open_weight_channel(self, host: str, port: int, world_size: int, factory: str) -> Any:
        """A ref: rank 0 joining the weight channel (its value is the manifest of each update)."""
        return self.actors[0].open_weight_channel.remote(host, port, world_size, factory)

    def send_weights(self, version: int) -> list[Any]:
        """Refs of every rank's part in broadcasting one update (await them with the engines')."""
        return [actor.send_weights.remote(version) for actor in self._writers()]

    def save(self, run_dir: Path, step: int, state: dict) -> str:
        """Save checkpoint ``step`` under ``run_dir`` (every rank of a sharded model takes part); returns its folder."""
        return self._call(*[a.save.remote(str(run_dir), step, state) for a in self._writers()])[0]

    def restore(self, path: Path) -> int:
        """Every rank loads the checkpoint; returns its step."""
        restored = self._call(*[a.restore.remote(str(path)) for a in self.actors])
        return int(restored[0][0])

    def export(self, folder: Path) -> None:
        """Write the final model (LoRA adapters merged) and tokenizer into ``folder``."""
        self._call(*[a.export.remote(str(folder)) for a in self._writers()])

    def _writers(self) -> list[Any]:
        """The ranks that take part in producing whole weights: rank 0, or every rank of a sharded model."""
        return self.actors if self.sharded else self.actors[:1]

    def parameters(self) -> list[dict[str, Any]]:
        """Every rank's trainable parameters, whole, in rank order (tests check that the ranks agree)."""
        return self._call(*[a.parameters.remote() for a in self.actors])

    def check(self) -> None:
        """Return at once, or raise :class:`LearnerFailure` if a rank has died or failed to start.

        The driver calls this while the rollout workers play (the ranks are idle then), so a dead
        learner stops the run at once rather than at the next update. Each rank keeps one cheap call
        in its queue; an answered one is replaced, a dead rank's fails.
        """
        import ray

        if not self.pings:
            self.pings = [actor.pid.remote() for actor in self.actors]
        answered, _ = ray.wait(self.pings, num_returns=len(self.pings), timeout=0)
        for rank, ref in enumerate(self.pings):
            if ref in answered:
                self._call(ref)
                self.pings[rank] = self.actors[rank].pid.remote()

    def shutdown(self) -> None:
        """Kill every rank's actor (a killed group cannot be used again)."""
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors, self.pings = [], []

    def _call(self, *refs: Any) -> list[Any]:
        """The refs' values in order; a dead rank stops the whole group at once (the others may be
        blocked in a collective waiting for it)."""
        from agents.training.ray.cluster import death_text, wait_in_turn

        def stop(error: Exception) -> LearnerFailure:
            self.shutdown()  # frees the ranks still waiting in a collective for the dead one
            return LearnerFailure(
                f"A learner rank died ({death_text(error)}); the run stops here. The actor's log under "
                "/tmp/ray/session_latest/logs says more."
            )

        return wait_in_turn(refs, stop)
