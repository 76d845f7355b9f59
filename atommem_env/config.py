"""Every tunable value of an environment, validated in one place.

Defaults are the paper's (SPEC §2–§4, §9, §10). Keyword arguments of ``gym.make`` / an env class that
are not the source, tokenizer, embedder or render mode land here. :class:`ContextConfig` holds what
every protocol shares (how the context is chunked, how long a response may be);
:class:`EnvConfig` adds the AtomMem memory options and :class:`MemAgentConfig` the MemAgent ones.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar, get_type_hints

import numpy as np

from atommem_env.ablations import NONE, Ablation, advance_rule, resolve_ablation
from atommem_env.errors import ConfigError
from atommem_env.protocol import ATOMMEM, PARSING_RULES, Protocol, differing_rules, resolve_protocol

ADVANCE_MODES = ("on_write", "always")
PROMPT_STYLES = ("paper", "compact")
ACTION_FORMATS = ("tags", "tools")
# The protocol rules about a response's *text* (how its tags parse, whether its answer is boxed, which
# responses are scored): they have no meaning for tool calls, so action_format="tools" needs ours.
TEXT_RULES = (*PARSING_RULES, "require_box", "scored_answers")
MEMAGENT_PROMPTS = ("memagent", "atommem-paper")  # keys of prompts.MEMAGENT_ANSWERING_TEMPLATES
_Config = TypeVar("_Config", bound="ContextConfig")


@dataclass(frozen=True)
class ContextConfig:
    """Options every protocol shares: chunking of the context and the response budget.

    Attributes:
        chunk_tokens: tokens per chunk of the context (paper: 4,000).
        chunk_overlap: extra tokens shown on each side of a chunk (paper: 100).
        max_context_tokens: contexts longer than this are centre-truncated (paper: 160K).
        response_tokens: responses are cut here before they are used (paper: 4,096).
        protocol: the rules of play and scoring: ``"atommem"`` (ours, the default), ``"reference"``
            (the reference code's, see :mod:`atommem_env.protocol`), ``"reference-grouping"``, or a
            :class:`~atommem_env.protocol.Protocol`; read it back resolved as :attr:`rules`.
    """

    chunk_tokens: int = 4000
    chunk_overlap: int = 100
    max_context_tokens: int = 160_000
    response_tokens: int = 4096
    protocol: Protocol | str = "atommem"
    # Options of other protocols that this one refuses, with the reason the refusal gives.
    unavailable_options: ClassVar[dict[str, str]] = {}

    @property
    def rules(self) -> Protocol:
        """The resolved :class:`~atommem_env.protocol.Protocol`."""
        return resolve_protocol(self.protocol)

    def __post_init__(self) -> None:
        _check_flags_and_counts(self)
        object.__setattr__(self, "protocol", resolve_protocol(self.protocol))  # a name becomes its Protocol
        for name in ("chunk_tokens", "max_context_tokens", "response_tokens"):
            _require_int(name, getattr(self, name), minimum=1)
        _require_int("chunk_overlap", self.chunk_overlap, minimum=0)
        _require(self.chunk_overlap < self.chunk_tokens, "chunk_overlap", self.chunk_overlap,
                 f"must be smaller than chunk_tokens={self.chunk_tokens}")

    @classmethod
    def from_kwargs(cls: type[_Config], **kwargs: Any) -> _Config:
        """Build from keyword arguments, turning an unknown name into a "did you mean" error."""
        check_option_names(kwargs, {"env": [f.name for f in fields(cls)]}, cls.unavailable_options)
        return cls(**kwargs)


@dataclass(frozen=True)
class EnvConfig(ContextConfig):
    """Options of :class:`~atommem_env.env.MemoryQAEnv` (those of :class:`ContextConfig`, and these).

    Attributes:
        top_k: entries retrieved and shown each turn (paper: 6; ablations 3 and 12).
        scratchpad_tokens: scratchpad budget; longer writes are truncated with feedback.
        memory_list_tokens: budget of the shown ``Memory i`` list (paper: 4,096).
        max_entry_tokens: longest accepted memory entry; longer ones fail with feedback.
        capacity: most entries in the store (``None``: unlimited, as in the paper).
        max_turns: turn budget; ``None`` scales it with the episode (4 × (chunks + questions) + 8).
        advance: ``"on_write"`` moves to the next chunk only after a Create or Update (paper);
            ``"always"`` moves every turn.
        max_reads: consecutive reads allowed while reading, and reads per question while answering.
        ablation: a reference ablation, reproducing one of the reference's ablation files (``None``,
            or a name of :data:`~atommem_env.ablations.ABLATIONS`: ``"no_scratchpad"``, ``"no_store"``,
            ``"no_both"``, ``"no_scratchpad_update"``, ``"no_delete"``, ``"k3"``, ``"k12"``,
            ``"store_everything"``); read it back resolved as :attr:`ablation_rules`. The switches
            below are our clean variants; the two kinds do not combine.
        show_scratchpad: ablation: ``False`` hides and disables the scratchpad.
        show_retrieval: ablation: ``False`` hides and disables the store (query and entries); the
            chunk then advances on a scratchpad write (:meth:`advance_rule`).
        enable_update: ablation: ``False`` disables ``modify_memory``.
        enable_delete: ablation: ``False`` disables ``delete_memory``.
        freeze_scratchpad: ablation: the scratchpad is shown but cannot be written.
        store_everything: ablation: every document of a chunk is stored when the agent moves past it.
        prompt_style: ``"paper"`` (the reference prompts, verbatim) or ``"compact"`` (the same
            sections and tags in about a tenth of the tokens, for small models and CPU training).
        action_format: ``"tags"`` (the paper's: the response text with paired XML tags) or
            ``"tools"`` (a variant: the same operations as tool calls; ``observation["tools"]`` holds their
            schemas and the action is a list of calls or text with ``<tool_call>`` blocks, see
            :mod:`atommem_env.tool_calls`). Tools run under our protocol's text rules (:data:`TEXT_RULES`);
            a protocol that changes one of them (``"reference"``) is refused.
    """

    top_k: int = 6
    scratchpad_tokens: int = 2048
    memory_list_tokens: int = 4096
    max_entry_tokens: int = 1024
    capacity: int | None = None
    max_turns: int | None = None
    advance: str = "on_write"
    max_reads: int = 3
    ablation: Ablation | str | None = None
    show_scratchpad: bool = True
    show_retrieval: bool = True
    enable_update: bool = True
    enable_delete: bool = True
    freeze_scratchpad: bool = False
    store_everything: bool = False
    prompt_style: str = "paper"
    action_format: str = "tags"

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_int("max_entry_tokens", self.max_entry_tokens, minimum=1)
        for name in ("top_k", "scratchpad_tokens", "memory_list_tokens", "max_reads"):
            _require_int(name, getattr(self, name), minimum=0)
        _require(self.capacity is None or self.capacity >= 0, "capacity", self.capacity,
                 "must be None (unlimited) or >= 0")
        _require(self.max_turns is None or self.max_turns >= 1, "max_turns", self.max_turns,
                 "must be None (scaled to the episode) or >= 1")
        _require(self.advance in ADVANCE_MODES, "advance", self.advance, f"must be one of {ADVANCE_MODES}")
        _require(self.prompt_style in PROMPT_STYLES, "prompt_style", self.prompt_style,
                 f"must be one of {PROMPT_STYLES}")
        _require(self.action_format in ACTION_FORMATS, "action_format", self.action_format,
                 f"must be one of {ACTION_FORMATS}")
        if self.action_format == "tools":
            text_rules = [r for r in differing_rules(self.rules, ATOMMEM) if r in TEXT_RULES]
            _require(not text_rules, "action_format", self.action_format,
                     f"does not combine with protocol {self.rules.name!r}: its rules {text_rules} are about how a "
                     "response's text is parsed and scored, which tool calls do not have; play tools under "
                     "protocol='atommem' (or a Protocol that keeps our rules for these)")
        ablation = resolve_ablation(self.ablation)
        object.__setattr__(self, "ablation", ablation if ablation != NONE else None)
        if ablation != NONE:
            switched = [name for name in _CLEAN_SWITCHES if getattr(self, name) != _CLEAN_SWITCHES[name]]
            _require(not switched, "ablation", ablation.name,
                     f"reproduces a reference file and does not combine with the clean switches {switched}; "
                     "use one or the other")
            _require(self.top_k == 6 or ablation.reading_k is None, "ablation", ablation.name,
                     f"sets k itself ({ablation.reading_k} reading, {ablation.answering_k} answering); "
                     f"drop top_k={self.top_k}")

    @property
    def ablation_rules(self) -> Ablation:
        """The resolved :class:`~atommem_env.ablations.Ablation` (``NONE`` without one)."""
        return resolve_ablation(self.ablation)

    def advance_rule(self) -> str:
        """What moves the chunk on: a store write (the paper's rule); under the clean
        ``show_retrieval=False``, a scratchpad write or a (refused) Create/Update; every turn when no
        write is left (:func:`~atommem_env.ablations.advance_rule`)."""
        return advance_rule(self.advance, self.show_scratchpad, self.show_retrieval, self.freeze_scratchpad)

    def retrieval_depth(self, reading: bool) -> int:
        """Entries retrieved for a prompt of this phase: the ablation's k, else ``top_k``."""
        return self.ablation_rules.top_k(reading, self.top_k)

    def turn_budget(self, num_chunks: int, num_questions: int) -> int:
        """Turns allowed for an episode: ``max_turns`` if set, else the protocol's fixed budget (the
        reference: 41), else a scaled one where a re-read per chunk and three reads per question fit."""
        return self.max_turns or self.rules.turn_budget or 4 * (num_chunks + num_questions) + 8

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


# The clean ablation switches and their defaults (a reference ablation needs them all at default).
_CLEAN_SWITCHES = {"show_scratchpad": True, "show_retrieval": True, "enable_update": True,
                   "enable_delete": True, "freeze_scratchpad": False, "store_everything": False}


@dataclass(frozen=True)
class MemAgentConfig(ContextConfig):
    """Options of :class:`~atommem_env.memagent.MemAgentEnv` (the MemAgent baseline, SPEC §9).

    Attributes:
        memory_tokens: the memory budget: each reading response is cut to this many tokens and
            becomes the whole memory (MemAgent: 1,024). Under a protocol with
            ``limit_scratchpad=False`` (the reference) only ``response_tokens`` cuts it, as only the
            generation cap did there.
        memagent_prompt: the answering template: ``"memagent"`` (MemAgent's own, the default) or
            ``"atommem-paper"`` (the AtomMem paper's baseline, which adds "Output the answer only as an
            exact match—do not add any description."; ``evaluate.py --preset memagent`` uses it).
    """

    memory_tokens: int = 1024
    memagent_prompt: str = "memagent"
    unavailable_options: ClassVar[dict[str, str]] = {
        "action_format": "the MemAgent protocol has no tools: its action is free text that becomes the whole "
                         "memory; action_format is an option of the AtomMem ids",
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_int("memory_tokens", self.memory_tokens, minimum=1)
        _require(self.memagent_prompt in MEMAGENT_PROMPTS, "memagent_prompt", self.memagent_prompt,
                 f"must be one of {MEMAGENT_PROMPTS}")


def _check_flags_and_counts(config: ContextConfig) -> None:
    """Every ``bool`` option holds a bool and every ``int | None`` one an int or None.

    A string such as ``show_retrieval="no"`` is truthy: without this check it would silently mean True
    and the ablation would not happen. (``int`` options are checked with their ranges below; strings
    with their allowed values.)
    """
    hints = get_type_hints(type(config))
    for f in fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        if hint is bool:
            _require(isinstance(value, (bool, np.bool_)), f.name, value,
                     f"must be True or False (a string or number is not a flag: pass {f.name}=False or True)")
        elif hint == (int | None) and value is not None:
            is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            _require(is_int, f.name, value, "must be None or an integer")


def check_option_names(given: Iterable[str], valid: Mapping[str, Sequence[str]],
                       notes: Mapping[str, str] = {}) -> None:
    """Refuse an option name that no group of ``valid`` holds, suggesting the closest name of any group.

    Args:
        given: the option names passed.
        valid: the accepted names by group (e.g. ``{"env": [...], "source": [...]}``), listed in the error.
        notes: why a name that is valid elsewhere is not here (e.g. ``data_dir`` on a Synthetic id); such
            names are suggested too, with their note.

    Raises:
        ConfigError: the first unknown name, with a "did you mean" and every valid name.
    """
    known = [name for names in valid.values() for name in names]
    for name in given:
        if name in known:
            continue
        close = difflib.get_close_matches(name, [*known, *notes], n=1)
        if name in notes:
            hint = f" ({notes[name]})."
        elif close:
            hint = f". Did you mean {close[0]!r}" + (f" ({notes[close[0]]})?" if close[0] in notes else "?")
        else:
            hint = "."
        groups = "; ".join(f"{group}: {', '.join(names)}" for group, names in valid.items() if names)
        raise ConfigError(f"Unknown environment option {name!r}{hint} Valid options: {groups}.")


def _require(ok: bool, name: str, value: Any, reason: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} {reason}.")


def _require_int(name: str, value: Any, minimum: int) -> None:
    # bool is an int subclass, but memory_tokens=True is a mistake, not a budget of one token.
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    _require(is_int and value >= minimum, name, value, f"must be an integer >= {minimum}")
