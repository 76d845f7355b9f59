"""The rules an episode is played and scored by: our fixed protocol, or the reference code's own.

A :class:`Protocol` is one frozen value whose fields are the individual rules where this suite and the
paper's reference implementation (RUCBM/AtomMem; ``ref:`` below is ``AtomMem/`` in that repository)
differ. :data:`ATOMMEM` is the suite's default (SPEC, with its [fix] markers); :data:`REFERENCE`
reproduces the reference code wherever its behaviour is defined, on the same episodes, so that a
result can be set beside the paper's and the effect of each fix measured one at a time::

    from atommem_env.protocol import ATOMMEM, REFERENCE, with_rules
    one_fix = with_rules(REFERENCE, ATOMMEM, ["gold_matching"])   # the reference, but own-gold scoring
    one_quirk = with_rules(ATOMMEM, REFERENCE, ["require_box"])   # ours, but unboxed answers score 0

Envs take ``protocol="atommem" | "reference" | "reference-grouping" | Protocol``. Explicit options win
over a protocol's: ``max_turns`` over :attr:`Protocol.turn_budget`, and ``shuffle=`` given to a
registered benchmark id over :attr:`Protocol.document_order`. The data rules (document order,
grouping, shared paragraphs) are applied where the env builds its own source (registered ids,
``make_benchmark_env``); a source object passed in directly keeps its own settings.

Both envs take every protocol. :class:`~atommem_env.env.MemoryQAEnv` reads :data:`ATOMMEM_RULES` (all
but the MemAgent baseline's own two); :class:`~atommem_env.memagent.MemAgentEnv` reads
:data:`MEMAGENT_RULES` (scoring, data, turn budget, reading-phase answers, the memory's length and its
own two) and ignores the rest, which concern the store, the action tags and feedback it does not have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

from atommem_env.errors import ConfigError


@dataclass(frozen=True)
class Protocol:
    """One value per rule; the field comments give the reference's behaviour, its file, and our fix."""

    name: str = "atommem"

    # ---------------------------------------------------------------- scoring and aggregation
    # ref: verl/utils/reward_score/hotpotqa.py (strip_string: lower-case, drop spaces and a few LaTeX
    # tokens, keep punctuation) vs ours SQuAD style (drop punctuation and articles, keep spaces).
    normalization: str = "squad"  # "squad" | "math"
    # ref hotpotqa.py:24-28: no \boxed{} in the last 300 characters scores 0 (S10). Ours: the plain
    # text of <final_answer> counts when there is no box.
    require_box: bool = False
    # ref reward_score/__init__.py:27-38: each answer is compared with every gold of the episode,
    # reusably. Ours [fix]: with its own question's gold.
    gold_matching: str = "own"  # "own" | "any"
    # ref reward_score/__init__.py:30-37: every response of the episode is scored once, if it has
    # exactly one <final_answer> (its content) or else a "\boxed{" (the whole response); the sum is
    # divided by the number of questions (S11, S14: the reward is the reference's per-episode EM).
    # Ours: each question's recorded answer, reward = mean over questions.
    scored_answers: str = "recorded"  # "recorded" | "responses"

    # ------------------------------------------------------------------------------- data
    # ref taskutils/script/processing_multiquery.py:92: random.Random(4) for every sample. Ours [fix]:
    # the episode rng.
    document_order: str = "episode"  # "episode" | "fixed"
    # ref processing_multiquery.py:54-66,161: group sizes from Python's random.seed(42). Ours: numpy
    # default_rng(0) (S12). Same distribution, *different episodes*, so REFERENCE keeps ours to play
    # the same episodes; "reference-grouping" switches it for a calibration run.
    grouping: str = "atommem"  # "atommem" | "reference"
    # ref processing_multiquery.py:73-75: a paragraph shared by two questions of a group appears twice
    # and counts twice towards N (S13). Ours: once.
    shared_paragraphs: str = "once"  # "once" | "repeated"

    # ---------------------------------------------------------------------------- prompts
    # ref recurrent/impls/memory_long_short_multiquery.py:389-392: max_chunks=40, 41 turns. Ours:
    # 4 × (chunks + questions) + 8 (SPEC §4). An explicit max_turns wins.
    turn_budget: int | None = None
    # ref: the prompt never says what went wrong. Ours [fix]: a feedback section after a problem.
    feedback: bool = True

    # ----------------------------------------------------------------------------- dynamics
    # ref memory_long_short_multiquery.py:480-488: <final_answer> while reading advances the
    # question (or ends the episode) and is scored (S1). Ours: refused with feedback.
    answer_while_reading: bool = False
    # ref :468-473,511,523: a Create/Update tag moves to the next chunk and any write tag resets the
    # read counter even when it did nothing (unknown rank, empty text) (S2). Ours: only a successful one.
    failed_writes_count: bool = False
    # ref :496,501,515,527: writes reset the read counter in both phases (S3). Ours: while reading only.
    writes_reset_reads_when_answering: bool = False
    # ref: query_times is not reset when answering starts (S4). Ours: reset to 0.
    reads_carry_into_answering: bool = False
    # ref :529-536: a 4th consecutive query while reading skips a question (or ends the episode on the
    # last one). Ours [fix]: refused with feedback.
    fourth_read_skips_question: bool = False
    # ref :480-488: every <final_answer> of a response advances a question (S11). Ours: one per turn.
    several_answers_per_turn: bool = False
    # ref :552-553: any `<word ...>…</word>` pair, non-nested, so an unknown wrapper swallows the tags
    # inside it (S8), and reasoning before a lone </think> is parsed. Ours: the six tags and <think>.
    any_word_tags: bool = False
    # ref :505,518: re.match(r'Memory\s+(\d+)\s*:') / r'Memory\s+(\d+)', case-sensitive, prefix only
    # ("Memory 2 (dup)" accepted, "memory 2" and "Memory#2" not), and "Memory 0" meaning the last shown
    # entry (index -1) (S5, S6). Ours: lenient case and spacing, the whole content must be the rank.
    reference_ranks: bool = False
    # ref: an empty query counts as a read without changing the query; an empty add stores nothing but
    # advances; "Memory i:" with no text deletes the entry; an empty answer is an answer (S7).
    # Ours: each is an error with feedback.
    empty_tags_act: bool = False
    # ref :505-520 and the except at :491: a modify/delete without "Memory i" raises a KeyError that
    # skips the rest of the response and the chunk advance. Ours [fix]: an error, the rest runs.
    malformed_rank_aborts: bool = False
    # Not a rule, as both agree: a response with no known tag changes nothing but uses a turn. ref
    # :381 builds the metrics without an 'action_rate/not_follow' key, so with no <word>…</word> pair
    # :462 raises KeyError before :463 could advance the chunk (caught at :491); with only unknown
    # pairs no branch of :466-488 runs. Pinned in tests/atommem_env/test_protocol_rules.py.
    # ref modify_document (:629-640): the rank names the shown *text*; the first entry with that text
    # is deleted and the new text inserted as a new entry. Ours [fix]: the rank names a stable id and
    # Update keeps it. (The reference searched the whole batch's store; our stores are per episode.)
    entries_by_text: bool = False
    # ref: entries have no length limit (S9). Ours: max_entry_tokens (1,024), refused above it.
    limit_entry_length: bool = True
    # ref: the 2,048-token scratchpad budget was declared but never enforced. Ours [fix]: enforced.
    # MemAgentEnv: its memory is cut to memory_tokens (ours) or, like the reference's, only by the
    # response's generation cap (response_tokens; ref@e5a9b3d memory_multiquery.py:222-225,308).
    limit_scratchpad: bool = True

    # ------------------------------------------------------------------- the MemAgent baseline
    # Rules of MemAgentEnv only (MemoryQAEnv ignores them). ref@e5a9b3d: the AtomMem reference's
    # multi-question MemAgent baseline, recurrent/impls/memory_multiquery.py (deleted from the
    # reference repo later). There, parse_action (:301-308) decides by the text alone: a response
    # containing "\boxed{" answers the current question (or ends the episode on the last one), any
    # other becomes the memory, in either phase. MemAgentEnv also reads the scoring and data rules,
    # turn_budget (:237-240: 41 turns with max_chunks=40), answer_while_reading (a reading response
    # with "\boxed{" answers) and limit_scratchpad; the store rules mean nothing there.
    # ref :301-308: while answering, a response without "\boxed{" overwrites the memory and the same
    # question is asked again (until the turn budget ends the episode). Ours: each answering response
    # answers its question (its last box, or its plain text).
    unboxed_answer_rewrites_memory: bool = False
    # ref :175,207,215: the memory is shown as stored: `None` before the first chunk's response (an
    # empty object array), a blank response as blank. Ours [fix]: MemAgent's "No previous memory"
    # whenever the memory is empty (the reference defines that text at :162 but never uses it).
    raw_memory_text: bool = False

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"Protocol.{name}={getattr(self, name)!r}; choose one of {allowed}.")
        budget = self.turn_budget
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise ConfigError(f"Protocol.turn_budget={budget!r} must be None (scaled) or an int >= 1.")

    @property
    def custom_scoring(self) -> bool:
        """Whether any scoring rule differs from ours (the default scoring path is kept verbatim)."""
        return any(getattr(self, n) != getattr(ATOMMEM, n) for n in SCORING_RULES)


_CHOICES: dict[str, tuple[Any, ...]] = {
    "normalization": ("squad", "math"),
    "gold_matching": ("own", "any"),
    "scored_answers": ("recorded", "responses"),
    "document_order": ("episode", "fixed"),
    "grouping": ("atommem", "reference"),
    "shared_paragraphs": ("once", "repeated"),
}

#: The rule names, in declaration order (every field but ``name``).
RULES: tuple[str, ...] = tuple(f.name for f in fields(Protocol) if f.name != "name")
SCORING_RULES = ("normalization", "require_box", "gold_matching", "scored_answers")
DATA_RULES = ("document_order", "grouping", "shared_paragraphs")
PARSING_RULES = ("any_word_tags", "reference_ranks", "empty_tags_act", "malformed_rank_aborts")
MEMAGENT_ONLY_RULES = ("unboxed_answer_rewrites_memory", "raw_memory_text")
#: The rules MemAgentEnv reads; it accepts and ignores the others (they concern the store and feedback).
MEMAGENT_RULES = (*SCORING_RULES, *DATA_RULES, "turn_budget", "answer_while_reading", "limit_scratchpad",
                  *MEMAGENT_ONLY_RULES)
#: The rules MemoryQAEnv reads: all but the MemAgent baseline's own.
ATOMMEM_RULES = tuple(r for r in RULES if r not in MEMAGENT_ONLY_RULES)

ATOMMEM = Protocol()
REFERENCE = Protocol(
    name="reference",
    normalization="math", require_box=True, gold_matching="any", scored_answers="responses",
    document_order="fixed", shared_paragraphs="repeated",
    turn_budget=41, feedback=False,
    answer_while_reading=True, failed_writes_count=True, writes_reset_reads_when_answering=True,
    reads_carry_into_answering=True, fourth_read_skips_question=True, several_answers_per_turn=True,
    any_word_tags=True, reference_ranks=True, empty_tags_act=True, malformed_rank_aborts=True,
    entries_by_text=True, limit_entry_length=False, limit_scratchpad=False,
    unboxed_answer_rewrites_memory=True, raw_memory_text=True,
)
#: REFERENCE on the reference's own question groups (different episodes from ATOMMEM's).
REFERENCE_GROUPING = replace(REFERENCE, name="reference-grouping", grouping="reference")
PROTOCOLS = {p.name: p for p in (ATOMMEM, REFERENCE, REFERENCE_GROUPING)}


def with_rules(base: Protocol, source: Protocol, rules: Iterable[str], name: str | None = None) -> Protocol:
    """``base`` with the named ``rules`` taken from ``source`` (e.g. REFERENCE with one fix of ATOMMEM).

    Raises:
        ConfigError: an unknown rule name.
    """
    rules = list(rules)
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise ConfigError(f"Unknown protocol rule(s) {unknown}; the rules are {list(RULES)}.")
    label = name or (f"{base.name}+{source.name}:" + ",".join(rules) if rules else base.name)
    return replace(base, name=label, **{r: getattr(source, r) for r in rules})


def differing_rules(a: Protocol, b: Protocol) -> tuple[str, ...]:
    """The rule names whose values differ between ``a`` and ``b``."""
    return tuple(r for r in RULES if getattr(a, r) != getattr(b, r))


def resolve_protocol(value: str | Protocol) -> Protocol:
    """A Protocol from a name (``"atommem"``, ``"reference"``, ``"reference-grouping"``) or itself."""
    if isinstance(value, Protocol):
        return value
    if isinstance(value, str) and value in PROTOCOLS:
        return PROTOCOLS[value]
    raise ConfigError(f"protocol={value!r} is unknown; use one of {sorted(PROTOCOLS)} or a Protocol instance.")
