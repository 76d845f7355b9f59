"""Every environment id of the suite, in one flat list.

Ids follow ``AtomMem-<Benchmark>[-<Documents>]-v<N>`` for the AtomMem protocol (:class:`MemoryQAEnv`)
and ``AtomMem-MemAgent-<Benchmark>[-<Documents>]-v<N>`` for the MemAgent baseline protocol
(:class:`MemAgentEnv`, SPEC §9) on the same data and defaults. Registration is cheap: nothing is read or
downloaded until ``gym.make`` builds an env. Registered kwargs are defaults; ``gym.make(id, **kw)``
overrides them (e.g. ``data_dir=...``, ``top_k=3``, ``embedder=...``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

import gymnasium as gym

from atommem_env.config import ContextConfig, EnvConfig, MemAgentConfig, check_option_names
from atommem_env.env import MemoryQAEnv
from atommem_env.memagent import MemAgentEnv
from atommem_env.protocol import ATOMMEM_RULES, MEMAGENT_RULES, resolve_protocol
from atommem_env.qa_env import LongContextQAEnv

BENCHMARKS = {"HotpotQA": "hotpotqa", "2WikiMultihopQA": "2wikimultihopqa", "MuSiQue": "musique"}
DOCUMENT_COUNTS = (200, 400, 800)
# Keyword arguments that configure the episode source rather than the env itself.
_BENCHMARK_SOURCE_ARGS = ("split", "data_dir", "data_files", "questions_per_episode", "shuffle", "max_questions",
                          "grouping", "shared_paragraphs")
# Synthetic ids use compact defaults (short chunks) so a demo has several chunks and runs on a CPU.
_SYNTHETIC_DEFAULTS = {"chunk_tokens": 512, "chunk_overlap": 32}
# The small CPU setting (docs/TRAINING.md): 4 documents (2 gold, 2 distractors), 128-token chunks and the
# compact prompts, so SmolLM2-135M can be trained and evaluated on a 2-core CPU. Not the paper's setting.
_Env = TypeVar("_Env", bound=LongContextQAEnv)
_CONFIGS: dict[type, type[ContextConfig]] = {MemoryQAEnv: EnvConfig, MemAgentEnv: MemAgentConfig}
TINY_SYNTHETIC = {**_SYNTHETIC_DEFAULTS, "num_documents": 4, "chunk_tokens": 128, "prompt_style": "compact"}


def make_synthetic_env(**kwargs: Any) -> MemoryQAEnv:
    """Build a Synthetic env: source options go to ``SyntheticSource``, the rest to the env."""
    return _synthetic(MemoryQAEnv, kwargs)


def make_benchmark_env(benchmark: str, num_documents: int, **kwargs: Any) -> MemoryQAEnv:
    """Build a real-benchmark env; the data is located and parsed here, not at registration."""
    return _benchmark(MemoryQAEnv, benchmark, num_documents, kwargs)


def make_memagent_synthetic_env(**kwargs: Any) -> MemAgentEnv:
    """Build a Synthetic env under the MemAgent protocol (options as in :func:`make_synthetic_env`)."""
    return _synthetic(MemAgentEnv, kwargs)


def make_memagent_benchmark_env(benchmark: str, num_documents: int, **kwargs: Any) -> MemAgentEnv:
    """Build a real-benchmark env under the MemAgent protocol (options as in :func:`make_benchmark_env`)."""
    return _benchmark(MemAgentEnv, benchmark, num_documents, kwargs)


def _synthetic(env_cls: type[_Env], kwargs: dict[str, Any]) -> _Env:
    from atommem_env.datasets.synthetic import SyntheticSource

    names = list(inspect.signature(SyntheticSource).parameters)
    notes = {k: "an option of the real-benchmark ids; Synthetic ids read no files" for k in _BENCHMARK_SOURCE_ARGS
             if k not in names}
    notes.update(_CONFIGS[env_cls].unavailable_options)
    check_option_names(kwargs, {"env": env_option_names(env_cls), "source": names}, notes)
    source_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
    return env_cls(SyntheticSource(**source_kwargs), **kwargs)


def _benchmark(env_cls: type[_Env], benchmark: str, num_documents: int, kwargs: dict[str, Any]) -> _Env:
    from atommem_env.datasets import load_benchmark

    # Before any file or hub lookup: a misspelt data_dir must not fall back to a download.
    check_option_names(kwargs, {"env": env_option_names(env_cls), "source": ["num_documents", *_BENCHMARK_SOURCE_ARGS]},
                       _CONFIGS[env_cls].unavailable_options)
    source_kwargs = {k: kwargs.pop(k) for k in _BENCHMARK_SOURCE_ARGS if k in kwargs}
    # The protocol's data rules shape the episodes; a source option given explicitly wins.
    rules = resolve_protocol(kwargs.get("protocol", "atommem"))
    source_kwargs.setdefault("shuffle", rules.document_order)
    source_kwargs.setdefault("grouping", rules.grouping)
    source_kwargs.setdefault("shared_paragraphs", rules.shared_paragraphs)
    source = load_benchmark(benchmark, num_documents=num_documents, **source_kwargs)
    return env_cls(source, **kwargs)


def env_option_names(env_cls: type[LongContextQAEnv]) -> list[str]:
    """The options ``env_cls`` itself takes: its constructor's keywords, then its config's fields."""
    keywords = [p.name for p in inspect.signature(env_cls).parameters.values()
                if p.kind == p.KEYWORD_ONLY]
    return keywords + [f.name for f in fields(_CONFIGS[env_cls])]


def _register(env_id: str, entry_point: Any, **kwargs: Any) -> None:
    if env_id not in gym.registry:  # importing twice (e.g. reloads in notebooks) must not warn
        gym.register(id=env_id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=False)


def register_all() -> None:
    """Register, for each protocol, the Synthetic id and every real benchmark at 200/400/800 documents."""
    _register("AtomMem-Synthetic-v0", make_synthetic_env, **_SYNTHETIC_DEFAULTS)
    _register("AtomMem-Synthetic-Tiny-v0", make_synthetic_env, **TINY_SYNTHETIC)
    _register("AtomMem-MemAgent-Synthetic-v0", make_memagent_synthetic_env, **_SYNTHETIC_DEFAULTS)
    for prefix, make in (("AtomMem", make_benchmark_env), ("AtomMem-MemAgent", make_memagent_benchmark_env)):
        for display, name in BENCHMARKS.items():
            _register(f"{prefix}-{display}-v0", make, benchmark=name, num_documents=200)
            for n in DOCUMENT_COUNTS:
                _register(f"{prefix}-{display}-{n}-v0", make, benchmark=name, num_documents=n)


def registered_ids() -> list[str]:
    """All ids this package registers, in a stable order."""
    return [env_id for env_id in gym.registry if env_id.startswith("AtomMem-")]


def documents_per_episode(env_id: str, options: Mapping[str, Any] | None = None) -> int:
    """How many documents each episode of ``env_id`` built with ``options`` holds; nothing is loaded.

    ``num_documents`` among ``options`` wins, then the id's registered value (200 / 400 / 800, 4 for the
    Tiny id), then the Synthetic source's default (40). A benchmark source gives exactly that many or
    refuses to build, so the number is the episodes' own.
    """
    from atommem_env.datasets.synthetic import SyntheticSource

    options = options or {}
    registered = gym.spec(env_id).kwargs
    default = inspect.signature(SyntheticSource).parameters["num_documents"].default
    return int(options.get("num_documents", registered.get("num_documents", default)))


def needs_data(env_id: str) -> bool:
    """Whether a registered id reads benchmark files (and so takes ``data_dir``); Synthetic ids do not."""
    return "benchmark" in gym.spec(env_id).kwargs


def protocol_rules(env_id: str) -> tuple[str, ...]:
    """The :class:`~atommem_env.protocol.Protocol` rules the env of a registered id reads; it ignores the rest."""
    memagent = gym.spec(env_id).entry_point in (make_memagent_synthetic_env, make_memagent_benchmark_env)
    return MEMAGENT_RULES if memagent else ATOMMEM_RULES
