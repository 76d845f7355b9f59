"""Sharded learner ranks: torch FSDP2 (``fully_shard``) for models whose weights, gradients and AdamW
state do not fit one GPU (the paper's Qwen3-8B full fine-tuning on 8 GPUs).

    model = shard(model, device="cuda", bf16=True)      # every rank, inside the process group
    learner = Learner(model, config)                     # the optimizer sees the sharded parameters
    model_state, optimizer_state = gather_state(learner.model, learner.optimizer)   # every rank
    load_state(learner.model, learner.optimizer, model_state, optimizer_state)      # every rank

Each decoder layer is one FSDP unit, then the root (embeddings, final norm, head): a layer's weights
are all-gathered just before its forward and freed after it, its gradients reduce-scattered in its
backward. Every forward and backward therefore holds collectives, so every rank must run the same
number of passes (:func:`agents.training.batching.pad_micro_batches` pads the shorter ranks).

Gradients are *summed* over ranks, not averaged (divide factor 1, sum-only reductions): each rank's
loss is already its token sum divided by the whole step's tokens, as in the replicate strategy. (Sum
also sidesteps pytorch/pytorch#162338, FSDP2's average silently summing on gloo in 2025.)

The full model and optimizer state exist only on rank 0 (CPU), for weight sync and checkpoints:
``torch.distributed.checkpoint.state_dict`` with ``full_state_dict=True, cpu_offload=True``; loading
reads them on rank 0 and broadcasts (``broadcast_from_rank0``), so a node does not hold one copy of
an 8B model's optimizer state per rank.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from atommem_env.errors import ConfigError

STRATEGIES = ("replicate", "fsdp")


def strategy_problems(strategy: str, ranks: int, lora_r: int) -> list[str]:
    """What is wrong with a learner strategy for ``ranks`` learner ranks, one line per problem."""
    if strategy not in STRATEGIES:
        return [f"--learner-strategy {strategy}: choose replicate (each rank holds the whole model) or fsdp "
                "(parameters, gradients and optimizer state sharded over the ranks)."]
    if strategy == "replicate":
        return []
    found = []
    if ranks < 2:
        found.append(f"--learner-strategy fsdp shards the model over the learner ranks, and the plan has {ranks}; "
                     "use --num-learners 2 or more (or the GPUs for them), or --learner-strategy replicate.")
    if lora_r:
        found.append(f"--learner-strategy fsdp with --lora-r {lora_r}: LoRA is not supported on sharded models "
                     "(peft's adapters and merge would need sharding-aware code). Train LoRA with --learner-strategy "
                     "replicate (the adapters are small; each rank holds the frozen base model), or drop --lora-r.")
    return found


def shard(model: torch.nn.Module, *, device: str, bf16: bool, frozen: bool = False) -> torch.nn.Module:
    """Apply ``fully_shard`` to every decoder layer of ``model``, then to the whole model (in place).

    Args:
        device: ``"cuda"`` computes in bfloat16 with float32 gradient reduction when ``bf16``; on
            CPU everything stays float32.
        frozen: a model that only runs forward (the KL reference): its root is resharded after
            forward too, since no backward will follow to free it.

    Raises:
        ConfigError: the model names no decoder layer class (``_no_split_modules``).
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    # Every rank of the process group, on the rank's own device (a Ray actor sees its GPU as cuda:0).
    mesh = init_device_mesh(device, (dist.get_world_size(),))
    policy = MixedPrecisionPolicy()
    if bf16 and device == "cuda":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=True if frozen else None)
    for module in model.modules():
        if isinstance(module, FSDPModule):  # the settings are per unit, not inherited from the root
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
    return model


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules of the classes that transformers never splits across devices: the decoder layers."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    layers = [module for module in model.modules() if type(module).__name__ in names]
    if not layers:
        raise ConfigError(
            f"{type(model).__name__} lists no decoder layer class in _no_split_modules ({sorted(names)}), so FSDP "
            "cannot shard it layer by layer. Use a transformers causal LM, or --learner-strategy replicate."
        )
    return layers


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` went through :func:`shard` (its parameters are DTensor shards)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def is_rank_zero() -> bool:
    """Whether this process is rank 0 of the default process group (which must be initialized)."""
    import torch.distributed as dist

    return dist.get_rank() == 0


def _full_options(broadcast_from_rank0: bool = False) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, broadcast_from_rank0=broadcast_from_rank0)


def gather_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> tuple[dict, dict]:
    """The full model state dict and (with ``optimizer``) the full optimizer state dict, on CPU.

    A collective: every rank calls it; rank 0 gets the tensors, the other ranks empty dicts. The
    optimizer state is keyed by parameter names (not positions), as :func:`load_state` reads it.
    """
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    model_state = get_model_state_dict(model, options=_full_options())
    optimizer_state = {} if optimizer is None else get_optimizer_state_dict(model, optimizer, options=_full_options())
    return model_state, optimizer_state


def load_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, model_state: dict,
               optimizer_state: dict) -> None:
    """Load full state dicts that rank 0 holds (the other ranks pass empty dicts) into every shard.

    A collective. The dicts given are consumed (the loader turns their tensors into shards).
    """
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    options = _full_options(broadcast_from_rank0=True)
    set_model_state_dict(model, model_state, options=options)
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)


def full_tensors(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, whole tensor)`` of every state-dict entry, one at a time (all-gathered on sharded models).

    On a sharded model each step is a collective: every rank must iterate to the end, in the same order.
    """
    for name, tensor in model.state_dict().items():
        yield name, tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
