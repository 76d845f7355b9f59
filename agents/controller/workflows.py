"""Static memory workflows: fixed macro-action sequences, the baselines a learned controller must beat.

A controller policy maps ``(features, text observation)`` of a
:class:`~agents.controller.env.ControllerEnv` to a macro index. The first four workflows look only at the
phase and the read counter of the text observation, so they do the same thing in every episode:

====================  ================================  ==========================================
workflow              every reading turn                every question
====================  ================================  ==========================================
``always-store``      ``store_chunk``                   ``read_question``, ``read_bridge``, ``answer``
``store-then-answer`` ``store_matches``                 ``read_question``, ``read_bridge``, ``answer``
``memagent-overwrite````update_best`` (one running note)  ``answer``
``never-read``        ``store_matches``                 ``answer`` (the query is never set)
====================  ================================  ==========================================

``bridge-then-store`` is the stronger baseline: hand-written rules that do what the RLlib controller learned
(read off its choices on training-family episodes), so that a learned controller is measured against the
best static version of its own strategy. Each reading turn, in this order: set the query to the question
when it is unset (``read_question``); point it at the bridge entity when the shown memories support a
first hop the query does not name yet (``read_bridge``), so the shown entries and the noted bridges follow
the chain; then store the chunk's matching sentences if it has any (``store_matches``), and otherwise store
the whole chunk while the bridge is unknown (a document about it is not recognisable yet:
``store_chunk``) and ``skip`` it once the query names the bridge. At most one read precedes each store.
Each question: ``answer`` once the shown memories support both hops (or after three reads), else
``read_bridge``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from agents.controller.env import FEATURE_INDEX
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
_MAX_READS = 3  # the env's default max_reads: a fourth read of a question would skip it


def _bridge_then_store(features: np.ndarray, obs: dict[str, Any]) -> int:
    """The ``bridge-then-store`` rules (module docstring)."""
    def has(name: str) -> bool:
        return bool(features[FEATURE_INDEX[name]] > 0)

    reads = int(obs["progress"][Progress.READS])
    if obs["phase"] != Phase.READING:
        return MACROS.index("answer" if has("has_second_hop") or reads >= _MAX_READS else "read_bridge")
    if reads == 0 and not has("query_matches_question"):
        return MACROS.index("read_question")
    if reads == 0 and has("has_first_hop") and not has("query_has_first_hop"):
        return MACROS.index("read_bridge")
    if has("chunk_matches"):
        return MACROS.index("store_matches")
    return MACROS.index("skip" if has("query_has_first_hop") else "store_chunk")


WORKFLOWS: dict[str, ControllerPolicy] = {
    "always-store": _sequence("store_chunk", _READ_THEN_ANSWER),
    "store-then-answer": _sequence("store_matches", _READ_THEN_ANSWER),
    "memagent-overwrite": _sequence("update_best", ("answer",)),
    "never-read": _sequence("store_matches", ("answer",)),
    "bridge-then-store": _bridge_then_store,
}
