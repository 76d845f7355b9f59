"""Training checkpoints: save a learner's whole state atomically, find the newest, restore it exactly.

    path = save_checkpoint("runs/sft/x", learner, step, tokenizer=tokenizer, state={"epoch": 1})
    step, state = load_checkpoint(latest_checkpoint("runs/sft/x"), learner)

A checkpoint is the folder ``run_dir/checkpoints/step-{step:08d}/`` holding

- the model as ``save_pretrained`` writes it (safetensors; with LoRA, peft's adapter files) and the
  tokenizer when given, so the folder loads with ``from_pretrained`` / ``agents.models.load_causal_lm``;
- ``training.pt``: optimizer and scheduler state and ``learner.steps``;
- ``rng.pt``: every random generator (see :mod:`agents.training.rng`);
- ``state.json``: the caller's own state (data cursor, counters);
- ``manifest.json``, written last: format version, step, the saved parameters' names, shapes and
  dtypes, the learner config, whether the model was sharded, and the size of every file (a truncated
  file is caught before loading).

A sharded (FSDP) learner is saved the same way: every rank calls :func:`save_checkpoint` (the full
state is gathered onto rank 0, which alone writes) and :func:`load_checkpoint` (rank 0 reads the
tensors and broadcasts them into the shards).

It is written into a hidden staging folder and renamed into place, so a crash mid-save leaves no
folder that :func:`latest_checkpoint` would pick.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeGuard

import torch

from agents.training.learner import Learner, LearnerConfig
from agents.training.model_protocols import PeftModelLike, SavesPretrained
from agents.training.rng import capture_rng, missing_generators, restore_rng
from atommem_env.errors import AtomMemError

__all__ = [
    "CheckpointError", "atomic_folder", "export_model", "latest_checkpoint", "load_checkpoint", "save_checkpoint",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"
TRAINING = "training.pt"
RNG = "rng.pt"
STATE = "state.json"
_STEP_FOLDER = re.compile(r"^step-(\d{8,})$")
_DAMAGED_FIX = (
    "The checkpoint is damaged: delete this folder to resume from the one before it (latest_checkpoint "
    "then picks that), or start a new run in another folder."
)


class CheckpointError(AtomMemError):
    """A checkpoint cannot be saved or restored (names the folder, what is wrong and the fix)."""


# ---------------------------------------------------------------------------------------------------
# Saving


def save_checkpoint(
    run_dir: str | Path,
    learner: Learner,
    step: int,
    *,
    tokenizer: Any = None,
    state: dict | None = None,
    generators: dict[str, torch.Generator] | None = None,
    keep: int = 2,
) -> Path:
    """Write ``run_dir/checkpoints/step-{step:08d}/`` atomically and keep the newest ``keep`` checkpoints.

    Args:
        run_dir: the run's folder.
        learner: its model, optimizer, scheduler and step counter are saved.
        step: the caller's step number (names the folder; :func:`load_checkpoint` returns it).
        tokenizer: saved beside the model so the folder loads with ``from_pretrained``.
        state: JSON-serializable caller state (e.g. a data cursor), returned by :func:`load_checkpoint`.
        generators: named ``torch.Generator`` objects whose states are saved with the global ones.
        keep: how many checkpoints to keep, newest first (older ones are deleted after this save).

    Returns:
        The checkpoint folder.
    """
    if keep < 1 or step < 0:
        raise CheckpointError(f"save_checkpoint(step={step}, keep={keep}): need step >= 0 and keep >= 1.")
    payload = json.dumps(state or {}, indent=2)  # fails early, before anything is written
    folder = Path(run_dir) / CHECKPOINTS / f"step-{step:08d}"
    model_state, optimizer_state = _full_state(learner)
    if not _writes(learner):
        return folder  # a sharded rank other than 0: it only took part in gathering the state
    with atomic_folder(folder) as staging:
        _save_model(learner.model, staging, model_state)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        torch.save(
            {"optimizer": optimizer_state, "scheduler": learner.scheduler.state_dict(), "learner_steps": learner.steps},
            staging / TRAINING,
        )
        torch.save(capture_rng(generators), staging / RNG)
        (staging / STATE).write_text(payload, encoding="utf-8")
        _write_manifest(staging, learner, step, model_state)
    _prune(folder.parent, keep)
    log.info("saved checkpoint %s", folder)
    return folder


def export_model(learner: Learner, folder: str | Path, *, tokenizer: Any = None) -> Path:
    """Write the learner's model as a plain ``from_pretrained`` folder (atomically).

    With LoRA the adapters are merged into a copy of the model first, so the folder is a whole model
    that loads without peft; the learner itself is left as it was.
    """
    model, (model_state, _) = learner.model, _full_state(learner, with_optimizer=False)
    folder = Path(folder)
    if not _writes(learner):
        return folder
    if _is_peft(model):
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    with atomic_folder(folder) as staging:
        _save_model(model, staging, model_state)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
    return folder


@contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """Yield a staging folder beside ``folder``; on success it replaces ``folder`` in one rename.

    On an exception the staging folder is removed and ``folder`` is left as it was. A process killed
    mid-write leaves only a hidden ``.staging-*`` folder, which :func:`save_checkpoint` removes later.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{folder.name}-", dir=folder.parent))
    try:
        yield staging
        if folder.exists():  # re-saving the same step: move the old copy aside, then swap
            old = Path(tempfile.mkdtemp(prefix=f".old-{folder.name}-", dir=folder.parent))
            folder.rename(old / folder.name)
            staging.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _full_state(learner: Learner, with_optimizer: bool = True) -> tuple[dict | None, dict | None]:
    """``(model state, optimizer state)`` to save; the model state is ``None`` unless the model is
    sharded (then both are gathered onto rank 0: every rank must call this)."""
    if _is_sharded(learner.model):
        from agents.training.fsdp import gather_state

        return gather_state(learner.model, learner.optimizer if with_optimizer else None)
    return None, learner.optimizer.state_dict() if with_optimizer else None


def _writes(learner: Learner) -> bool:
    """Whether this process writes files: always, except the ranks > 0 of a sharded model."""
    if not _is_sharded(learner.model):
        return True
    from agents.training.fsdp import is_rank_zero

    return is_rank_zero()


def _is_sharded(model: torch.nn.Module) -> bool:
    from agents.training.fsdp import is_sharded

    return is_sharded(model)


def _save_model(model: torch.nn.Module, folder: Path, state_dict: dict | None = None) -> None:
    if isinstance(model, SavesPretrained):  # transformers and peft models; peft writes only the adapters
        # A sharded model's own state dict holds shards: it is saved from the gathered full one.
        model.save_pretrained(folder, **({} if state_dict is None else {"state_dict": state_dict}))
    else:
        from safetensors.torch import save_model

        save_model(model, str(folder / "model.safetensors"))  # drops tied duplicates, like save_pretrained


def _write_manifest(folder: Path, learner: Learner, step: int, model_state: dict | None) -> None:
    manifest = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "learner_steps": learner.steps,
        "lora": _is_peft(learner.model),
        "sharded": model_state is not None,
        "parameters": _describe(_saved_tensors(learner.model) if model_state is None else model_state),
        "learner_config": _config_dict(learner.config),
        "files": {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()},
        "versions": _versions(),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _versions() -> dict[str, str]:
    """Versions of the libraries that wrote the files (for reading a manifest, not for checks)."""
    import importlib.metadata

    found = {}
    for package in ("torch", "transformers", "peft", "safetensors"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def _prune(checkpoints: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints, and leftovers of interrupted saves."""
    for leftover in checkpoints.glob(".staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in checkpoints.glob(".old-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for _, folder in _complete_checkpoints(checkpoints)[:-keep]:
        shutil.rmtree(folder)


# ---------------------------------------------------------------------------------------------------
# Finding


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of ``run_dir``, or ``None`` when there is none."""
    found = _complete_checkpoints(Path(run_dir) / CHECKPOINTS)
    return found[-1][1] if found else None


def _complete_checkpoints(checkpoints: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every finished checkpoint, oldest first; staging folders never match."""
    if not checkpoints.is_dir():
        return []
    found = []
    for folder in checkpoints.iterdir():
        match = _STEP_FOLDER.match(folder.name)
        if match and (folder / MANIFEST).is_file():
            found.append((int(match.group(1)), folder))
    return sorted(found)


# ---------------------------------------------------------------------------------------------------
# Loading


def load_checkpoint(
    path: str | Path,
    learner: Learner,
    *,
    generators: dict[str, torch.Generator] | None = None,
    allow_config_changes: Collection[str] = (),
) -> tuple[int, dict]:
    """Restore a checkpoint into an already-built learner (same model architecture and config).

    Everything is checked before anything is changed: the files are present with their recorded
    sizes, the learner config and the parameters match, the training state and RNG files load.

    Args:
        path: a checkpoint folder (e.g. from :func:`latest_checkpoint`).
        learner: built like the one that was saved; its weights, optimizer, scheduler and step count
            are overwritten.
        generators: named generators to restore (each must have been saved under the same name).
        allow_config_changes: learner config fields that may differ from the saved ones (e.g.
            ``("micro_batch_tokens",)`` to resume on a device with less memory).

    Returns:
        ``(step, state)`` as given to :func:`save_checkpoint`.

    Raises:
        CheckpointError: anything missing, damaged or not matching the learner; never a silent fresh start.
    """
    folder = Path(path)
    manifest = _read_manifest(folder)
    _check_files(folder, manifest)
    _check_config(folder, manifest, learner, allow_config_changes)
    _check_parameters(folder, manifest, learner)
    _check_sharding(folder, manifest, learner)
    training = _torch_load(folder / TRAINING, lazy=not _writes(learner))
    rng = _torch_load(folder / RNG)
    state = _read_json(folder / STATE)
    missing = missing_generators(rng, generators)
    if missing:
        raise CheckpointError(
            f"{folder} holds no state for the generators {missing} (it has {sorted(rng['generators'])}); "
            "pass the same generator names as when it was saved."
        )
    if _is_sharded(learner.model):
        _load_sharded(folder, manifest, learner, training["optimizer"])
    else:
        _load_weights(folder, manifest, learner.model)
        learner.optimizer.load_state_dict(training["optimizer"])
    learner.scheduler.load_state_dict(training["scheduler"])
    learner.steps = int(training["learner_steps"])
    restore_rng(rng, generators)
    log.info("resumed from %s (step %d)", folder, manifest["step"])
    return int(manifest["step"]), state


def _read_manifest(folder: Path) -> dict[str, Any]:
    if not (folder / MANIFEST).is_file():
        raise CheckpointError(
            f"{folder} is not a checkpoint (no {MANIFEST}). Pass a folder such as "
            f"run_dir/{CHECKPOINTS}/step-00000100, e.g. latest_checkpoint(run_dir)."
        )
    manifest = _read_json(folder / MANIFEST)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{folder / MANIFEST} has format_version {manifest.get('format_version')!r}; this code reads "
            f"version {FORMAT_VERSION}. Load it with the atommem version that wrote it, or start a new run."
        )
    return manifest


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} cannot be read ({error}). {_DAMAGED_FIX}") from error


def _torch_load(path: Path, lazy: bool = False) -> Any:
    """The file's objects; ``lazy`` maps its tensors without reading them (ranks that never use them)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=lazy)
    except Exception as error:  # truncation and corruption surface as several unrelated exception types
        raise CheckpointError(f"{path} cannot be read ({type(error).__name__}: {error}). {_DAMAGED_FIX}") from error


def _check_files(folder: Path, manifest: Mapping[str, Any]) -> None:
    problems = []
    for name, size in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != size:
            problems.append(f"{name} has {path.stat().st_size} bytes, the manifest says {size} (truncated or changed)")
    if problems:
        raise CheckpointError(f"{folder}: " + "; ".join(problems) + f". {_DAMAGED_FIX}")


def _check_config(folder: Path, manifest: Mapping[str, Any], learner: Learner, allowed: Collection[str]) -> None:
    # A field the checkpoint lacks was added after it was saved, and the run ran with what is now its
    # default (as GRPO's --resume reads config.json: runs.check_run_dir).
    saved = {**_config_dict(LearnerConfig()), **manifest["learner_config"]}
    current = _config_dict(learner.config)
    differing = [
        f"{name}: checkpoint {saved.get(name)!r}, this learner {current.get(name)!r}"
        for name in sorted(saved.keys() | current.keys())
        if saved.get(name) != current.get(name) and name not in allowed
    ]
    if differing:
        raise CheckpointError(
            f"{folder} was saved with a different learner config ({'; '.join(differing)}). Build the learner "
            f"with the checkpoint's config (learner_config in {MANIFEST}), pass allow_config_changes=[...] "
            "for fields that may change, or start a new run in another folder."
        )


def _check_parameters(folder: Path, manifest: Mapping[str, Any], learner: Learner) -> None:
    saved, current = manifest["parameters"], _describe(_saved_tensors(learner.model))
    problems = [f"missing from the model: {name}" for name in sorted(saved.keys() - current.keys())]
    problems += [f"not in the checkpoint: {name}" for name in sorted(current.keys() - saved.keys())]
    problems += [
        f"{name}: checkpoint {saved[name]['dtype']}{saved[name]['shape']}, "
        f"model {current[name]['dtype']}{current[name]['shape']}"
        for name in sorted(saved.keys() & current.keys())
        if saved[name] != current[name]
    ]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise CheckpointError(
            f"{folder} does not fit this model ({shown}). Build the learner on the same model architecture, "
            f"dtype and LoRA settings as the saved run ({MANIFEST} lists its parameters)."
        )


def _check_sharding(folder: Path, manifest: Mapping[str, Any], learner: Learner) -> None:
    saved, current = bool(manifest.get("sharded", False)), _is_sharded(learner.model)
    if saved != current:
        names = {True: "fsdp", False: "replicate (or a single learner)"}
        raise CheckpointError(
            f"{folder} was saved by a {names[saved]} learner and this one is {names[current]}: their optimizer "
            "states are stored differently. Resume with the run's own --learner-strategy."
        )


def _load_weights(folder: Path, manifest: Mapping[str, Any], model: torch.nn.Module) -> None:
    """Copy the saved tensors into ``model`` in place (the optimizer keeps pointing at the same tensors)."""
    tensors = _read_weights(folder, manifest)
    if _is_peft(model):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, tensors)
        return
    targets = model.state_dict()
    absent = [name for name in targets if name not in tensors and not _tied_to_loaded(name, targets, tensors)]
    if absent:
        raise CheckpointError(f"{folder}: the weight files lack {absent[:5]}. {_DAMAGED_FIX}")
    with torch.no_grad():
        for name, value in tensors.items():
            targets[name].copy_(value)


def _load_sharded(folder: Path, manifest: Mapping[str, Any], learner: Learner, optimizer_state: dict) -> None:
    """Rank 0 reads the full weights and optimizer state and broadcasts them into every rank's shards."""
    from agents.training.fsdp import load_state

    model_state: dict[str, torch.Tensor] = {}
    if _writes(learner):
        model_state = _read_weights(folder, manifest)
        # Saved from a gathered state, which names tied weights twice: every name must be in the files.
        absent = sorted(learner.model.state_dict().keys() - model_state.keys())
        if absent:
            raise CheckpointError(f"{folder}: the weight files lack {absent[:5]}. {_DAMAGED_FIX}")
    load_state(learner.model, learner.optimizer, model_state, optimizer_state if _writes(learner) else {})


def _read_weights(folder: Path, manifest: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    tensors = _read_safetensors(folder)
    unexpected = sorted(tensors.keys() - manifest["parameters"].keys())
    if unexpected:
        raise CheckpointError(
            f"{folder}: weight files hold tensors the manifest does not list: {unexpected[:5]}. {_DAMAGED_FIX}"
        )
    return tensors


def _read_safetensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(folder.glob("*.safetensors")):
        try:
            tensors.update(load_file(path))
        except (SafetensorError, OSError) as error:
            raise CheckpointError(f"{path} cannot be read ({error}). {_DAMAGED_FIX}") from error
    if not tensors:
        raise CheckpointError(f"{folder} holds no *.safetensors weights. {_DAMAGED_FIX}")
    return tensors


def _tied_to_loaded(name: str, targets: Mapping[str, torch.Tensor], loaded: Collection[str]) -> bool:
    """Whether ``name`` shares storage with a loaded tensor (tied weights are saved once)."""
    pointer = targets[name].data_ptr()
    return any(targets[other].data_ptr() == pointer for other in loaded if other in targets)


# ---------------------------------------------------------------------------------------------------
# What is saved


def _is_peft(model: torch.nn.Module) -> TypeGuard[PeftModelLike]:
    return isinstance(model, PeftModelLike)


def _saved_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint holds, by their names in the weight files (LoRA: the adapters only)."""
    if _is_peft(model):
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(model)
    return model.state_dict()


def _describe(tensors: Mapping[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    return {name: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")} for name, t in tensors.items()}


def _config_dict(config: LearnerConfig) -> dict[str, Any]:
    """A learner config as JSON would return it (tuples become lists), so saved and live compare equal."""
    return json.loads(json.dumps(asdict(config)))
