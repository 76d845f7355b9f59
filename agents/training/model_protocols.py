"""What the training library uses of a model beyond ``torch.nn.Module``, named as checkable protocols.

``torch.nn.Module.__getattr__`` types every attribute it does not know as a tensor or a module, so a
type checker cannot see the methods that transformers and peft models add. These protocols name the
few the library calls; ``isinstance(model, Protocol)`` is the ``hasattr`` test the code made anyway,
and it narrows the type as well. The protocols name only attributes that the class itself defines:
from Python 3.12 ``isinstance`` looks attributes up statically, and would not see forwarded ones.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@runtime_checkable
class WrapsBaseModel(Protocol):
    """A wrapper around a base model that forwards its calls (a peft model)."""

    def get_base_model(self) -> torch.nn.Module:
        """The wrapped model."""
        ...


@runtime_checkable
class PeftModelLike(WrapsBaseModel, Protocol):
    """A peft model: adapters (``peft_config`` names them) around a base model.

    Every other attribute is forwarded to peft's tuner (``merge_and_unload``, for one), untyped.
    """

    peft_config: Any

    def __getattr__(self, name: str) -> Any: ...


@runtime_checkable
class SwitchesAdapters(Protocol):
    """A model whose adapters can be switched off for a while (peft)."""

    def disable_adapter(self) -> AbstractContextManager[Any]:
        """Within this context the model computes with its base weights alone."""
        ...


@runtime_checkable
class SavesPretrained(Protocol):
    """A model that writes itself as a ``from_pretrained`` folder (transformers and peft models)."""

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> None:
        """Write the model's config and weights into ``save_directory``."""
        ...
