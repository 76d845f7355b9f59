"""Capture and restore every random number generator a training run draws from.

A resumed run must draw the same numbers as an uninterrupted one: dropout masks, sampling, shuffles.
That means Python's ``random``, numpy's global generator, torch's CPU generator, each CUDA device's
generator, and any named ``torch.Generator`` the caller owns (e.g. a sampler's).

The captured states are plain Python values and CPU tensors, so ``torch.load(..., weights_only=True)``
reads them back without unpickling arbitrary objects.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from agents.training.errors import RunError

log = logging.getLogger(__name__)


def capture_rng(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """The state of the global generators and of each named generator.

    Raises:
        RunError: numpy's global generator was replaced by one other than MT19937.
    """
    numpy_state = np.random.get_state(legacy=True)
    if not isinstance(numpy_state, tuple):  # a dict: the global generator is not the legacy MT19937
        raise RunError(
            f"numpy's global generator is {numpy_state.get('bit_generator')}; a run checkpoint records only the "
            "legacy MT19937 one. Leave numpy's global generator as it is (draw from your own Generator instead)."
        )
    kind, key, pos, has_gauss, gauss = numpy_state
    return {
        "python": random.getstate(),
        # An ndarray would need numpy's pickling; a list of ints loads with weights_only=True.
        "numpy": {"kind": kind, "key": key.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }


def missing_generators(states: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None) -> list[str]:
    """Names in ``generators`` whose state ``states`` (from :func:`capture_rng`) does not hold."""
    return sorted(set(generators or {}) - set(states["generators"]))


def restore_rng(states: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Put every generator back into the state :func:`capture_rng` recorded.

    Raises:
        KeyError: a named generator has no recorded state (check with :func:`missing_generators` first).
    """
    random.setstate(_as_python_state(states["python"]))
    numpy = states["numpy"]
    np.random.set_state(
        (numpy["kind"], np.asarray(numpy["key"], dtype=np.uint32), numpy["pos"], numpy["has_gauss"], numpy["gauss"])
    )
    torch.set_rng_state(states["torch"])
    _restore_cuda(states["cuda"])
    for name, generator in (generators or {}).items():
        generator.set_state(states["generators"][name])


def _as_python_state(state: Any) -> tuple:
    """``random.setstate`` wants tuples; a state that went through a list-producing format is fixed up."""
    version, internal, gauss = state
    return version, tuple(internal), gauss


def _restore_cuda(states: list[torch.Tensor] | None) -> None:
    if states is None or not torch.cuda.is_available():
        if states is not None:
            log.warning("the checkpoint holds CUDA generator states but CUDA is not available; they are not restored")
        return
    if len(states) != torch.cuda.device_count():
        log.warning(
            "the checkpoint holds %d CUDA generator states for %d visible devices; restoring the first %d",
            len(states), torch.cuda.device_count(), min(len(states), torch.cuda.device_count()),
        )
    for device, state in enumerate(states[: torch.cuda.device_count()]):
        torch.cuda.set_rng_state(state, device)
