"""Every tunable value of an AtomMem environment, validated in one place.

Defaults are the paper's (SPEC §2–§4, §10). Keyword arguments of ``gym.make`` / ``MemoryQAEnv``
that are not the source, tokenizer, embedder or render mode land here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Any

from atommem_env.errors import ConfigError

ADVANCE_MODES = ("on_write", "always")


@dataclass(frozen=True)
class EnvConfig:
    """Options of :class:`~atommem_env.env.MemoryQAEnv`.

    Attributes:
        chunk_tokens: tokens per chunk of the context (paper: 4,000).
        chunk_overlap: extra tokens shown on each side of a chunk (paper: 100).
        max_context_tokens: contexts longer than this are centre-truncated (paper: 160K).
        top_k: entries retrieved and shown each turn (paper: 6; ablations 3 and 12).
        scratchpad_tokens: scratchpad budget; longer writes are truncated with feedback.
        memory_list_tokens: budget of the shown ``Memory i`` list (paper: 4,096).
        response_tokens: responses are cut here before parsing (paper: 4,096).
        max_entry_tokens: longest accepted memory entry; longer ones fail with feedback.
        capacity: most entries in the store (``None``: unlimited, as in the paper).
        max_turns: turn budget; ``None`` scales it with the episode (4 × (chunks + questions) + 8).
        advance: ``"on_write"`` moves to the next chunk only after a Create or Update (paper);
            ``"always"`` moves every turn.
        max_reads: consecutive reads allowed while reading, and reads per question while answering.
        show_scratchpad: ablation: ``False`` hides and disables the scratchpad.
        show_retrieval: ablation: ``False`` hides and disables the store (query and entries).
        enable_update: ablation: ``False`` disables ``modify_memory``.
        enable_delete: ablation: ``False`` disables ``delete_memory``.
        freeze_scratchpad: ablation: the scratchpad is shown but cannot be written.
        store_everything: ablation: every document of a chunk is stored when the agent moves past it.
    """

    chunk_tokens: int = 4000
    chunk_overlap: int = 100
    max_context_tokens: int = 160_000
    top_k: int = 6
    scratchpad_tokens: int = 2048
    memory_list_tokens: int = 4096
    response_tokens: int = 4096
    max_entry_tokens: int = 1024
    capacity: int | None = None
    max_turns: int | None = None
    advance: str = "on_write"
    max_reads: int = 3
    show_scratchpad: bool = True
    show_retrieval: bool = True
    enable_update: bool = True
    enable_delete: bool = True
    freeze_scratchpad: bool = False
    store_everything: bool = False

    def __post_init__(self) -> None:
        positive = ("chunk_tokens", "max_context_tokens", "response_tokens", "max_entry_tokens")
        non_negative = ("chunk_overlap", "top_k", "scratchpad_tokens", "memory_list_tokens", "max_reads")
        for name in positive:
            _require(getattr(self, name) >= 1, name, getattr(self, name), "must be >= 1")
        for name in non_negative:
            _require(getattr(self, name) >= 0, name, getattr(self, name), "must be >= 0")
        _require(self.chunk_overlap < self.chunk_tokens, "chunk_overlap", self.chunk_overlap,
                 f"must be smaller than chunk_tokens={self.chunk_tokens}")
        _require(self.capacity is None or self.capacity >= 0, "capacity", self.capacity,
                 "must be None (unlimited) or >= 0")
        _require(self.max_turns is None or self.max_turns >= 1, "max_turns", self.max_turns,
                 "must be None (scaled to the episode) or >= 1")
        _require(self.advance in ADVANCE_MODES, "advance", self.advance, f"must be one of {ADVANCE_MODES}")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "EnvConfig":
        """Build from keyword arguments, turning an unknown name into a "did you mean" error."""
        known = [f.name for f in fields(cls)]
        for name in kwargs:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"Unknown environment option {name!r}.{hint} Valid options: {', '.join(known)}.")
        return cls(**kwargs)

    def turn_budget(self, num_chunks: int, num_questions: int) -> int:
        """Turns allowed for an episode: a re-read per chunk and three reads per question fit easily."""
        return self.max_turns or 4 * (num_chunks + num_questions) + 8

    def disabled_features(self) -> tuple[str, ...]:
        """Names of switched-off features, as the prompt's ablation notes know them."""
        disabled = []
        if not self.show_scratchpad or self.freeze_scratchpad:
            disabled.append("update_memory")
        if not self.show_retrieval:
            disabled.append("retrieval")
        if self.show_retrieval and not self.enable_delete:
            disabled.append("delete_memory")
        if self.show_retrieval and not self.enable_update:
            disabled.append("modify_memory")
        return tuple(disabled)


def _require(ok: bool, name: str, value: Any, reason: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} {reason}.")
