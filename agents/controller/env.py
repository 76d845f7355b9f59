"""ControllerEnv: an AtomMem env seen as a small discrete decision problem, for neural controllers.

The action is the index of a macro-action (:mod:`agents.controller.macros`), rendered into the inner env's
ordinary action text; the observation is a vector of :data:`FEATURES` in [0, 1] computed from the
inner env's text observation. Reward, termination and ``info`` are the inner env's (``info`` also
gets the ``macro`` name and the ``action`` text sent), so the protocol and its scores are unchanged::

    env = make_controller_env({"env_id": "AtomMem-Synthetic-v0"})
    features, info = env.reset(seed=0)
    features, reward, terminated, truncated, info = env.step(MACROS.index("store_matches"))

It is its own ``gym.Env`` (holding the inner env) rather than a ``gym.Wrapper``, because its spaces
and step signature are new; ``env.inner`` is the wrapped AtomMem env. The features and macros read
the observation only, so a controller decides from what a model would see, plus the store size and
turn budget that ``info`` reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import atommem_env  # noqa: F401 - registers the AtomMem ids that make_controller_env builds
from agents import scripted as S
from agents import text as T
from agents.controller.macros import MACROS, MacroSettings, applicable, render_macro
from atommem_env.env import MemoryQAEnv
from atommem_env.errors import ConfigError
from atommem_env.observation import Phase, Progress

FEATURES = (
    "phase",                   # 0 reading, 1 answering
    "chunk_progress",          # chunk index / chunk count
    "last_chunk",              # 1 on the last chunk
    "question_progress",       # question index / question count
    "reads",                   # consecutive reads (reading) or reads of this question, / max_reads
    "turns_used",              # turn / turn budget
    "store_size",              # entries n as n / (n + 16): smooth, inside [0, 1)
    "shown",                   # shown memories / top_k
    "chunk_question_hits",     # share of question entities the chunk mentions
    "chunk_bridge_hits",       # share of noted bridge entities the chunk mentions
    "chunk_matches",           # sentences store_matches would take / max_entries
    "memory_question_hits",    # share of shown memories that mention a question entity
    "memory_keyword_overlap",  # best share of question keywords found in one shown memory
    "has_first_hop",           # the shown memories support a first-hop entity
    "has_second_hop",          # ... and what it links to
    "query_matches_question",  # share of question keywords in the query
    "query_has_first_hop",     # the query names the first-hop entity
    "bridges_noted",           # bridge entities in the scratchpad / max_bridges
    "had_error",               # the previous response had a problem (non-empty feedback)
    "yes_no_question",         # a question opens like "Is / Did / Were ..."
    "comparison_question",     # an "A or B?" question
)
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURES)}
_CONFIG_KEYS = ("env_id", "env_kwargs", "macro_settings")


class ControllerEnv(gym.Env[np.ndarray, np.int64]):
    """Discrete macro-actions and numeric features over an AtomMem env (AtomMem protocol only).

    Args:
        env: an AtomMem env (``gym.make("AtomMem-...")`` or a :class:`MemoryQAEnv`).
        settings: how much the macros write; ``None`` fits entries and responses to the env's limits.

    Raises:
        ConfigError: ``env`` does not run the AtomMem protocol (e.g. a MemAgent id).
    """

    metadata = {"render_modes": []}

    def __init__(self, env: gym.Env, settings: MacroSettings | None = None) -> None:
        base = atommem_base(env)
        self.inner = env
        self._base = base
        self.settings = settings or fitted_settings(base)
        self.action_space = spaces.Discrete(len(MACROS))
        self.observation_space = spaces.Box(0.0, 1.0, shape=(len(FEATURES),), dtype=np.float32)
        self._text: dict[str, Any] | None = None

    @property
    def base(self) -> MemoryQAEnv:
        """The AtomMem env under ``inner``'s wrappers (its config, tokenizer and episode source)."""
        return self._base

    @property
    def text_observation(self) -> dict[str, Any]:
        """The inner env's current observation (the dict a language model would see)."""
        if self._text is None:
            raise ConfigError("No observation yet: call reset() first.")
        return self._text

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the inner env (same ``seed`` and ``options``) and return its features and ``info``."""
        super().reset(seed=seed)
        self._text, info = self.inner.reset(seed=seed, options=options)
        self._max_turns, self._store_size = info["max_turns"], info["memory_size"]
        self._last = self._features()
        return self._last, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Render macro ``action`` into action text and step the inner env with it.

        Returns:
            The new features, and the inner env's reward, termination flags and ``info`` (plus the
            ``macro`` name and the ``action`` text sent).

        Raises:
            ValueError: ``action`` is not a macro index.
        """
        if not self.action_space.contains(action):
            raise ValueError(f"action={action!r} is not a macro index in 0..{len(MACROS) - 1} ({', '.join(MACROS)}).")
        macro = MACROS[int(action)]
        text = render_macro(macro, self.text_observation, self._base.tokenizer, self.settings,
                            self._base.config.max_reads)
        self._text, reward, terminated, truncated, info = self.inner.step(text)
        self._store_size = info["memory_size"]
        self._last = self._features()
        return self._last, float(reward), terminated, truncated, {**info, "macro": macro, "action": text}

    def close(self) -> None:
        """Close the inner env."""
        self.inner.close()

    def action_mask(self) -> np.ndarray:
        """Which macros can act now (see :func:`action_mask`)."""
        return action_mask(self._last)

    def _features(self) -> np.ndarray:
        values = observation_features(self.text_observation, store_size=self._store_size,
                                      max_turns=self._max_turns, top_k=self._base.config.top_k,
                                      max_reads=self._base.config.max_reads, settings=self.settings)
        return np.array([values[name] for name in FEATURES], dtype=np.float32)


def observation_features(obs: dict[str, Any], *, store_size: int, max_turns: int, top_k: int, max_reads: int,
                         settings: MacroSettings) -> dict[str, float]:
    """Every feature of :data:`FEATURES` for a text observation, each in [0, 1]."""
    chunk_index, num_chunks, question_index, num_questions, reads, turn = (
        int(obs["progress"][field]) for field in Progress)
    reading = obs["phase"] == Phase.READING
    questions = list(obs["questions"]) if reading else [obs["question"]]
    names = S.question_entities(obs)
    keywords = T.keywords(" ".join(questions))
    bridges = S.bridges(obs["scratchpad"])
    memories = obs["memories"]
    hops = [S.hops(q, memories) for q in questions]
    first = [h1 for h1, _ in hops if h1]
    values = {
        "phase": float(obs["phase"]),
        "chunk_progress": chunk_index / max(1, num_chunks),
        "last_chunk": float(reading and chunk_index == num_chunks - 1),
        "question_progress": question_index / max(1, num_questions),
        "reads": reads / max(1, max_reads),
        "turns_used": turn / max(1, max_turns),
        "store_size": store_size / (store_size + 16.0),
        "shown": len(memories) / max(1, top_k),
        "chunk_question_hits": _share(names, lambda n: T.mentions(obs["chunk"], [n])),
        "chunk_bridge_hits": _share(bridges, lambda n: T.mentions(obs["chunk"], [n])),
        "chunk_matches": len(S.relevant_sentences(obs["chunk"], names + bridges, memories, settings.max_entries))
        / settings.max_entries,
        "memory_question_hits": _share(memories, lambda m: T.mentions(m, names)),
        "memory_keyword_overlap": max((_overlap(keywords, m) for m in memories), default=0.0),
        "has_first_hop": float(bool(first)),
        "has_second_hop": float(any(h2 for _, h2 in hops)),
        "query_matches_question": _overlap(keywords, obs["query"]),
        "query_has_first_hop": float(any(h.lower() in obs["query"].lower() for h in first)),
        "bridges_noted": len(bridges) / settings.max_bridges,
        "had_error": float(bool(obs["feedback"])),
        "yes_no_question": float(any(S.is_yes_no(q) for q in questions)),
        "comparison_question": float(any(S.is_comparison(q) for q in questions)),
    }
    return {name: min(1.0, max(0.0, value)) for name, value in values.items()}


def _mask_table() -> np.ndarray:
    # Applicability depends on three booleans only: tabulate it once, index it per batch row.
    table = np.zeros((2, 2, 2, len(MACROS)), dtype=bool)
    for phase, shown, reads_left in np.ndindex(2, 2, 2):
        table[phase, shown, reads_left] = [applicable(m, phase, shown, bool(reads_left)) for m in MACROS]
    return table


_MASKS = _mask_table()


def action_mask(features: np.ndarray) -> np.ndarray:
    """Boolean ``(..., len(MACROS))``: the macros that can act, from feature vectors alone.

    The same rule as :func:`agents.controller.macros.applicable` (a masked macro would send an empty response),
    read off the ``phase``, ``shown`` and ``reads`` features, so a policy network can apply it to
    its own input.
    """
    f = np.asarray(features)
    phase = f[..., FEATURE_INDEX["phase"]] >= 0.5
    shown = f[..., FEATURE_INDEX["shown"]] > 0
    reads_left = phase | (f[..., FEATURE_INDEX["reads"]] < 1.0)
    return _MASKS[phase.astype(int), shown.astype(int), reads_left.astype(int)]


def _share(items: list[str] | tuple[str, ...], hit: Any) -> float:
    return sum(1 for item in items if hit(item)) / len(items) if items else 0.0


def _overlap(keywords: list[str], text: str) -> float:
    if not keywords:
        return 0.0
    words = set(T.keywords(text))
    return sum(1 for k in keywords if k in words) / len(keywords)


def make_controller_env(config: Mapping[str, Any] | None = None) -> ControllerEnv:
    """Build a :class:`ControllerEnv` from a plain config (RLlib's ``env_config``).

    Keys: ``env_id`` (an AtomMem id, default ``"AtomMem-Synthetic-v0"``), ``env_kwargs`` (options
    for ``gym.make``, e.g. ``{"data_dir": ...}``), ``macro_settings`` (fields of
    :class:`MacroSettings`).

    Raises:
        ConfigError: an unknown key, values of the wrong type, or an id that does not run the AtomMem
            protocol (e.g. a MemAgent id).
    """
    config = dict(config or {})
    unknown = sorted(set(config) - set(_CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"Unknown controller env option(s) {unknown}; the options are {', '.join(_CONFIG_KEYS)}.")
    env_id = config.get("env_id", "AtomMem-Synthetic-v0")
    env_kwargs = config.get("env_kwargs") or {}
    macro_settings = config.get("macro_settings") or {}
    if not isinstance(env_id, str) or not env_id.startswith("AtomMem-"):
        raise ConfigError(f"env_id={env_id!r}: pass an AtomMem id such as 'AtomMem-Synthetic-v0'.")
    for key, value in (("env_kwargs", env_kwargs), ("macro_settings", macro_settings)):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}={value!r} must be a dict of options.")
    env = gym.make(env_id, **env_kwargs)
    return ControllerEnv(env, fitted_settings(atommem_base(env), **macro_settings))


def atommem_base(env: gym.Env) -> MemoryQAEnv:
    """The unwrapped AtomMem-protocol env of ``env``.

    Raises:
        ConfigError: ``env`` does not run the AtomMem protocol (e.g. a MemAgent id).
    """
    base = env.unwrapped
    if not isinstance(base, MemoryQAEnv):
        raise ConfigError(
            f"ControllerEnv needs an AtomMem-protocol env (MemoryQAEnv), got {type(base).__name__}: "
            "the macro-actions are AtomMem memory operations; use an AtomMem-* id, not AtomMem-MemAgent-*."
        )
    return base


def fitted_settings(env: MemoryQAEnv, **overrides: Any) -> MacroSettings:
    """Macro settings whose entries and responses fit the env's limits (``overrides`` win)."""
    limits = {"entry_tokens": env.config.max_entry_tokens, "response_tokens": env.config.response_tokens}
    return MacroSettings(**{**limits, **overrides})
