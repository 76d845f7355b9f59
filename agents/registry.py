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
                           ``openai:AtomMem@http://localhost:8000/v1``
``path/to/file.py:NAME``   your own policy: ``NAME`` in that Python file (loaded as a module of its own)
``module:NAME``            your own policy: ``NAME`` in an importable module (``NAME`` may be dotted)
=========================  ===============================================================

Keyword arguments go to the policy's constructor (``evaluate.py --policy-kwargs '{"temperature": 0}'``).
A custom ``NAME`` is a class or a factory, called with them, or a policy instance, which takes none.
The built-in names and the ``hf:``, ``vllm:`` and ``openai:`` prefixes are matched first, so a module of
that name is reached through its file instead. Model policies and custom modules are imported only
when a policy is built, so the baselines need neither torch nor vLLM and a spec checks without running
anyone's code.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
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
CUSTOM_KINDS = ("file", "module")  # path/to/file.py:NAME and module:NAME
SPEC_HELP = ("a baseline (" + ", ".join(BASELINES) + "), a diagnostic (" + ", ".join(DIAGNOSTICS)
             + "), smollm2, hf:NAME, vllm:NAME, openai:MODEL@URL, or your own as path/to/file.py:NAME or module:NAME")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def make_policy(spec: str, **kwargs: Any) -> Policy:
    """The policy named by ``spec`` (see the module table), built with ``kwargs``.

    Raises:
        ConfigError: an unknown spec, keyword arguments the policy does not take, or a custom ``NAME``
            that is missing or does not build a policy (an object with a ``name`` and an ``act``).
    """
    kind, args = parse_spec(spec)
    scripted = {**BASELINES, **DIAGNOSTICS}
    if kind in CUSTOM_KINDS:
        return _custom_policy(spec, _load_custom(spec, kind, *args), kwargs)
    factory = scripted[kind] if kind in scripted else _model_class(kind)
    _check_arguments(spec, factory, args, kwargs)
    return factory(*args, **kwargs)


def parse_spec(spec: str) -> tuple[str, tuple[str, ...]]:
    """(kind, positional arguments) of a spec, without importing or loading anything.

    ``kind`` is a baseline or diagnostic name, ``"hf"``, ``"vllm"`` or ``"openai"`` (with the model's
    arguments), or ``"file"`` / ``"module"`` (with the file or module and the ``NAME`` in it). A custom
    spec is checked as far as can be without running code: the file exists, the module's top-level
    package can be found.

    Raises:
        ConfigError: a malformed or unknown spec, a missing file or a module that cannot be found.
    """
    if spec in BASELINES or spec in DIAGNOSTICS:
        return spec, ()
    if spec == "smollm2":
        return "hf", ("smollm2",)
    kind, _, rest = spec.partition(":")
    if kind in MODEL_KINDS:
        return _model_spec(spec, kind, rest)
    target, colon, name = spec.rpartition(":")  # rpartition: a Windows path keeps its drive letter
    if not colon or not target or not _DOTTED.match(name):
        raise ConfigError(f"policy {spec!r} is unknown; pass {SPEC_HELP}.")
    if target.endswith(".py"):
        if not Path(target).is_file():
            raise ConfigError(f"policy {spec!r}: there is no file {target!r} (relative to {Path.cwd()}).")
        return "file", (target, name)
    if not _DOTTED.match(target) or importlib.util.find_spec(target.split(".")[0]) is None:
        raise ConfigError(f"policy {spec!r} is unknown: no module {target!r} can be imported; pass {SPEC_HELP} "
                          f"(a file in this folder: ./{target.replace('.', '/')}.py:{name}).")
    return "module", (target, name)


def _model_spec(spec: str, kind: str, rest: str) -> tuple[str, tuple[str, ...]]:
    if not rest:
        raise ConfigError(f"policy {spec!r} is unknown; pass {SPEC_HELP}.")
    if kind != "openai":
        return kind, (rest,)
    model, at, url = rest.rpartition("@")
    if not at or not model or not url:
        raise ConfigError(f"policy {spec!r}: write openai:MODEL@URL, e.g. openai:AtomMem@http://localhost:8000/v1.")
    return kind, (url, model)


def _check_arguments(spec: str, factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError as error:
        raise ConfigError(f"policy {spec!r}: {error}; it takes {_keywords(factory)}.") from None
    except ValueError:  # a callable without a signature (some builtins): let the call decide
        pass


def _load_custom(spec: str, kind: str, target: str, name: str) -> Any:
    """The object ``name`` (dotted: attributes of attributes) in the file or module ``target``."""
    module = _load_file(target) if kind == "file" else _import(spec, target)
    found: Any = module
    for part in name.split("."):
        if not hasattr(found, part):
            public = ", ".join(sorted(n for n in vars(module) if not n.startswith("_"))) or "nothing"
            raise ConfigError(f"policy {spec!r}: {target} has no {name!r}; it defines {public}.")
        found = getattr(found, part)
    return found


def _import(spec: str, target: str) -> Any:
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as error:
        if error.name is None or not (target == error.name or target.startswith(error.name + ".")):
            raise  # the module exists but needs another one: its own traceback says which
        raise ConfigError(f"policy {spec!r}: no module {target!r} can be imported ({error}).") from None


def _load_file(path: str) -> Any:
    """A Python file as a module, once per file: loading the same file again returns the same module."""
    resolved = Path(path).resolve()
    stem = re.sub(r"\W", "_", resolved.stem)
    module_name = f"atommem_policy_{stem}_{hashlib.sha256(str(resolved).encode()).hexdigest()[:12]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader_spec = importlib.util.spec_from_file_location(module_name, resolved)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"{path} cannot be loaded as a Python module.")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # before running it: dataclasses and pickle look classes up here
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]  # a file that failed (its own traceback follows) is not half-loaded
        raise
    return module


def _custom_policy(spec: str, found: Any, kwargs: dict[str, Any]) -> Policy:
    """A class or factory is called with ``kwargs``; an instance is used as it is."""
    if inspect.isclass(found) or (callable(found) and not _is_policy(found)):
        _check_arguments(spec, found, (), kwargs)
        built = found(**kwargs)
    elif kwargs:
        raise ConfigError(f"policy {spec!r} is an instance, built already: it takes no options "
                          f"(got {sorted(kwargs)}); name its class or a factory to pass options.")
    else:
        built = found
    if not _is_policy(built):
        raise ConfigError(f"policy {spec!r} gave {type(built).__name__!r}, which is not a policy: a policy has a "
                          "string `name` and a method `act(observations) -> list[Completion]`.")
    return built


def _is_policy(value: Any) -> bool:
    return not inspect.isclass(value) and isinstance(getattr(value, "name", None), str) \
        and callable(getattr(value, "act", None))


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
