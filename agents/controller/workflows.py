"""Static memory workflows: fixed macro-action sequences, the baselines a learned controller must beat.

A controller policy maps ``(features, text observation)`` of a
:class:`~agents.controller.env.ControllerEnv` to a macro index. A workflow looks only at the phase and
the read counter of the text observation, so it does the same thing in every episode:

====================  ================================  ==========================================
workflow              every reading turn                every question
====================  ================================  ==========================================
``always-store``      ``store_chunk``                   ``read_question``, ``read_bridge``, ``answer``
``store-then-answer`` ``store_matches``                 ``read_question``, ``read_bridge``, ``answer``
``memagent-overwrite````update_best`` (one running note)  ``answer``
``never-read``        ``store_matches``                 ``answer`` (the query is never set)
====================  ================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from agents.controller.macros import MACROS
from atommem_env.observation import Phase, Progress

ControllerPolicy = Callable[[np.ndarray, dict[str, Any]], int]


def _sequence(reading: str, answering: tuple[str, ...]) -> ControllerPolicy:
    """A workflow: ``reading`` on every reading turn; ``answering[k]`` once k reads were made."""
    def choose(features: np.ndarray, obs: dict[str, Any]) -> int:
        if obs["phase"] == Phase.READING:
            return MACROS.index(reading)
        reads = int(obs["progress"][Progress.READS])  # reads of the current question
        return MACROS.index(answering[min(reads, len(answering) - 1)])
    return choose


_READ_THEN_ANSWER = ("read_question", "read_bridge", "answer")

WORKFLOWS: dict[str, ControllerPolicy] = {
    "always-store": _sequence("store_chunk", _READ_THEN_ANSWER),
    "store-then-answer": _sequence("store_matches", _READ_THEN_ANSWER),
    "memagent-overwrite": _sequence("update_best", ("answer",)),
    "never-read": _sequence("store_matches", ("answer",)),
}
