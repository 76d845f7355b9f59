"""One way to build an env from options, used by evaluation, SFT, GRPO and every Ray rollout worker.

    spec = EnvSpec.from_flags("AtomMem-HotpotQA-200-v0", '{"top_k": 3}', data_dir="../shared/data")
    env = spec.make()                      # gym.make(env_id, top_k=3, data_dir="../shared/data")

The rule, in one place: ``kwargs`` are the env's options; ``data_dir`` is added only for ids that read
benchmark files (a Synthetic id takes no ``data_dir`` and would refuse it), and a ``data_dir`` given in
``kwargs`` wins over the flag. A spec is plain, picklable data: it travels to Ray actors as it is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

import atommem_env  # registers the ids
from agents.training.cli import json_object
from atommem_env import EpisodeSource
from atommem_env.errors import ConfigError


@dataclass(frozen=True)
class EnvSpec:
    """An env id and its options.

    Attributes:
        env_id: a registered id (``atommem_env.registered_ids()``).
        kwargs: options for ``gym.make`` (e.g. ``{"top_k": 3}``).
        data_dir: the benchmark data folder, used by ids that read data and ignored by the others.
    """

    env_id: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    data_dir: str | None = None

    @classmethod
    def from_flags(cls, env_id: str, env_kwargs: str | Mapping[str, Any] = "{}", data_dir: str | None = None,
                   *, flag: str = "--env-kwargs") -> EnvSpec:
        """A spec from command-line values: ``env_kwargs`` as JSON text (or a mapping already parsed).

        Raises:
            ConfigError: ``env_kwargs`` is not a JSON object (the message names ``flag``).
        """
        kwargs = json_object(flag, env_kwargs, '{"top_k": 3}') if isinstance(env_kwargs, str) else env_kwargs
        return cls(env_id, dict(kwargs), data_dir or None)

    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``gym.make(env_id, ...)``: ``kwargs`` plus ``data_dir`` where it applies."""
        options = dict(self.kwargs)
        if self.data_dir and atommem_env.needs_data(self.env_id):
            options.setdefault("data_dir", self.data_dir)
        return options

    def make(self, **overrides: Any) -> gym.Env:
        """A new env; ``overrides`` replace options for this env only (e.g. a shared ``embedder``)."""
        return gym.make(self.env_id, **{**self.options(), **overrides})

    def episode_count(self) -> int:
        """How many episodes the env's source holds (the indices ``options={"index": i}`` may pin).

        Raises:
            ConfigError: the env has no episode source (it is not an AtomMem env).
        """
        source = getattr(self.make().unwrapped, "source", None)
        if not isinstance(source, EpisodeSource):
            raise ConfigError(f"{self.env_id} has no episode source to count; use an AtomMem-* id.")
        return len(source)

    def factory(self) -> Callable[[], gym.Env]:
        """A zero-argument env factory, as :func:`agents.training.rollout.rollout` takes."""
        return self.make


def training_data(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Which data an env id with ``env_kwargs`` trains on, as recorded in a run's ``config.json``.

    Real-benchmark ids: ``{"split": "train"}`` or ``{"split": "dev"}`` (the split option, default dev).
    Synthetic ids have no split; they are families of worlds drawn from ``(seed_salt, index)``:
    ``{"split": None, "seed_salt": N}``. Ids that are not AtomMem's: ``{"split": None}``.

    Raises:
        ConfigError: the split option names no known split.
    """
    import atommem_env
    from atommem_env.datasets.sources import canonical_split

    if env_id not in atommem_env.registered_ids():
        return {"split": None}
    if atommem_env.needs_data(env_id):
        return {"split": canonical_split(env_kwargs.get("split", "dev"))}
    from atommem_env.datasets.synthetic import SyntheticSource

    default_salt = inspect.signature(SyntheticSource).parameters["seed_salt"].default
    return {"split": None, "seed_salt": env_kwargs.get("seed_salt", default_salt)}
