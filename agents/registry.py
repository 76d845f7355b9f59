"""Policies by name: one string picks a baseline, a local model, a vLLM engine or a served model.

=========================  ===============================================================
spec                       policy
=========================  ===============================================================
``heuristic``              :class:`~agents.scripted.HeuristicMemoryPolicy`
``heuristic-scratchpad``   :class:`~agents.scripted.ScratchpadHeuristicPolicy` (keeps its facts in the
                           scratchpad too: the baseline for ablations)
``no-memory``              :class:`~agents.scripted.NoMemoryPolicy`
``random``                 :class:`~agents.scripted.RandomPolicy`
``oracle``                 :class:`~agents.diagnostics.OraclePolicy`: a diagnostic that CHEATS (reads
                           the golds); an upper bound, never a baseline
``always-yes``             :class:`~agents.diagnostics.AlwaysYesPolicy`: a probe of any-gold scoring
``smollm2``                :class:`~agents.hf_policy.TransformersPolicy` on the offline SmolLM2-135M
``hf:NAME``                :class:`~agents.hf_policy.TransformersPolicy` (hub name or local folder)
``vllm:NAME``              :class:`~agents.vllm_policy.VLLMPolicy` (GPU hosts)
``openai:MODEL@URL``       :class:`~agents.openai_policy.OpenAIChatPolicy`, e.g.
                           ``openai:atommem-8b@http://localhost:8000/v1``
=========================  ===============================================================

Keyword arguments go to the policy's constructor (``evaluate.py --policy-kwargs '{"temperature": 0}'``).
Model policies are imported only when asked for, so the baselines need neither torch nor vLLM.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from agents.base import Policy
from agents.diagnostics import AlwaysYesPolicy, OraclePolicy
from agents.openai_policy import OpenAIChatPolicy
from agents.scripted import HeuristicMemoryPolicy, NoMemoryPolicy, RandomPolicy, ScratchpadHeuristicPolicy
from atommem_env.errors import ConfigError

BASELINES: dict[str, Callable[..., Policy]] = {
    "heuristic": HeuristicMemoryPolicy,
    "heuristic-scratchpad": ScratchpadHeuristicPolicy,
    "no-memory": NoMemoryPolicy,
    "random": RandomPolicy,
}
# Probes, not baselines: the oracle reads the gold answers (it needs prepare(source, indices) first).
DIAGNOSTICS: dict[str, Callable[..., Policy]] = {
    "oracle": OraclePolicy,
    "always-yes": AlwaysYesPolicy,
}
MODEL_KINDS = ("hf", "vllm", "openai")
SPEC_HELP = ("a baseline (" + ", ".join(BASELINES) + "), a diagnostic (" + ", ".join(DIAGNOSTICS)
             + "), smollm2, hf:NAME, vllm:NAME or openai:MODEL@URL")


def make_policy(spec: str, **kwargs: Any) -> Policy:
    """The policy named by ``spec`` (see the module table), built with ``kwargs``.

    Raises:
        ConfigError: an unknown spec, or keyword arguments the policy does not take.
    """
    kind, args = parse_spec(spec)
    scripted = {**BASELINES, **DIAGNOSTICS}
    factory = scripted[kind] if kind in scripted else _model_class(kind)
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError as error:
        raise ConfigError(f"policy {spec!r}: {error}; it takes {_keywords(factory)}.") from None
    return factory(*args, **kwargs)


def parse_spec(spec: str) -> tuple[str, tuple[str, ...]]:
    """(kind, positional arguments) of a spec, without importing or loading anything.

    ``kind`` is a baseline or diagnostic name, ``"hf"``, ``"vllm"`` or ``"openai"``.

    Raises:
        ConfigError: a malformed or unknown spec.
    """
    if spec in BASELINES or spec in DIAGNOSTICS:
        return spec, ()
    if spec == "smollm2":
        return "hf", ("smollm2",)
    kind, _, rest = spec.partition(":")
    if kind not in MODEL_KINDS or not rest:
        raise ConfigError(f"policy {spec!r} is unknown; pass {SPEC_HELP}.")
    if kind != "openai":
        return kind, (rest,)
    model, at, url = rest.rpartition("@")
    if not at or not model or not url:
        raise ConfigError(f"policy {spec!r}: write openai:MODEL@URL, e.g. openai:atommem-8b@http://localhost:8000/v1.")
    return kind, (url, model)


def _model_class(kind: str) -> Callable[..., Policy]:
    if kind == "hf":
        from agents.hf_policy import TransformersPolicy

        return TransformersPolicy
    if kind == "vllm":
        from agents.vllm_policy import VLLMPolicy

        return VLLMPolicy
    return OpenAIChatPolicy


def _keywords(factory: Callable[..., Any]) -> str:
    names = [p.name for p in inspect.signature(factory).parameters.values() if p.default is not p.empty]
    return "the keyword arguments " + ", ".join(names) if names else "no keyword arguments"
