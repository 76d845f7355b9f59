"""MemoryQAEnv: the AtomMem episode as a gymnasium environment.

One episode = one long context and its questions. The agent reads the context chunk by chunk (the
*reading* phase), managing a scratchpad and a store of entries with the actions of
:mod:`atommem_env.actions`; after the last chunk it answers the questions one per turn (the
*answering* phase). Reward is sparse: on the last step, the fraction of questions answered exactly
right, each against its own gold answer. ``protocol="reference"`` switches these rules, and the
others where the reference code differs, to the reference's (:mod:`atommem_env.protocol`).

The env is plain and picklable: it holds data, a memory store, an embedder and a tokenizer, never a
model server, socket or thread. Every random choice comes from ``self.np_random``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from atommem_env import ablations, prompts
from atommem_env import actions as A
from atommem_env.config import EnvConfig
from atommem_env.datasets.base import EpisodeSource
from atommem_env.embedders import make_embedder
from atommem_env.errors import ConfigError, MemoryOpError
from atommem_env.info import ErrorRecord, OpRecord, StepInfo, as_dict
from atommem_env.memory import MemoryStore
from atommem_env.qa_env import ANSWERING, DONE, READING, LongContextQAEnv
from atommem_env.reference_actions import parse_with_rules
from atommem_env.spaces import ToolAction
from atommem_env.tokenization import truncate_tokens
from atommem_env.tool_calls import calls_within, parse_tool_calls
from atommem_env.tool_prompts import tool_schemas

# How each op counts in the paper's operation statistics.
OP_STAT = {
    A.ADD_MEMORY: "create", A.UPDATE_QUERY: "read", A.MODIFY_MEMORY: "update",
    A.DELETE_MEMORY: "delete", A.UPDATE_MEMORY: "scratchpad", A.FINAL_ANSWER: "answer",
}
_DOCUMENT_START = re.compile(r"(?:^|\n\n)Document \d+:\n")
_DOCUMENT_MARK = re.compile(r"Document\s+\d+:")  # the reference alladd's split: anywhere in the chunk
_WRITES = (A.ADD_MEMORY, A.MODIFY_MEMORY, A.DELETE_MEMORY, A.UPDATE_MEMORY)
_UNLIMITED = 2**31 - 1  # a token budget no response reaches (the reference had none)
_SKIPPED = "Too many queries: this question was skipped."


@dataclass(frozen=True)
class _Reading:
    """A response as the env reads it: the text used (cut to the response budget; "" for tool calls),
    its ops, and why it was cut (None if it was not)."""

    text: str
    parsed: A.ParsedAction
    cut: str | None


@dataclass
class _Turn:
    """What one response did; becomes part of ``info``."""

    ops: list[OpRecord] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    answered: bool = False
    answered_questions: list[int] = field(default_factory=list)  # by final_answer, in order
    moves_on: bool = False  # a failed Create/Update that still advances (protocol failed_writes_count)
    wrote_scratchpad: bool = False  # advances when the store is hidden (ablations.advance_rule)
    aborted: bool = False  # the reference's caught exception: the rest of the response was skipped

    def fail(self, op: A.Op | None, code: str, message: str) -> None:
        tag = op.kind if op else None
        self.errors.append({"code": code, "message": message, "tag": tag})
        if op is not None:
            self.ops.append({"op": op.kind, "rank": op.rank, "ok": False, "id": None, "error": code})

    def done(self, op: A.Op, entry_id: int | None = None, warning: str | None = None) -> None:
        self.ops.append({"op": op.kind, "rank": op.rank, "ok": True, "id": entry_id, "error": warning})

    def ignore(self, op: A.Op) -> None:
        """A tag a reference ablation disabled: recorded in ``info`` only, never fed back."""
        self.ops.append({"op": op.kind, "rank": op.rank, "ok": False, "id": None, "error": "ignored"})


class MemoryQAEnv(LongContextQAEnv):
    """Long-context multi-hop QA with agent-managed memory (AtomMem, arXiv 2601.08323).

    Args:
        source: the episodes (a benchmark builder or the synthetic generator).
        tokenizer: ``"regex"`` (offline default), or any :class:`~atommem_env.tokenization.Tokenizer`.
        embedder: ``"hashing"`` (offline default), or any :class:`~atommem_env.embedders.Embedder`.
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns the current user message).
        **options: fields of :class:`~atommem_env.config.EnvConfig` (chunking, budgets, ablations,
            ``protocol``: the rules of :mod:`atommem_env.protocol`; it reads
            :data:`~atommem_env.protocol.ATOMMEM_RULES` and ignores the MemAgent baseline's own two).

    Observations are dicts: ``system`` and ``user`` are the rendered chat messages; the other keys are
    the same content as structured fields for non-LLM policies. The action is the response text; with
    ``action_format="tools"`` it may be a list of tool calls instead, and ``tools`` holds their schemas.
    """

    config: EnvConfig

    def __init__(
        self,
        source: EpisodeSource,
        *,
        tokenizer: Any = "regex",
        embedder: Any = "hashing",
        render_mode: str | None = None,
        **options: Any,
    ) -> None:
        self.config = EnvConfig.from_kwargs(**options)
        self.ablation = self.config.ablation_rules
        super().__init__(source, tokenizer=tokenizer, render_mode=render_mode)
        self.memory = MemoryStore(
            make_embedder(embedder),
            self.tokenizer,
            scratchpad_tokens=self.config.scratchpad_tokens if self.rules.limit_scratchpad else _UNLIMITED,
            max_entry_tokens=self.config.max_entry_tokens if self.rules.limit_entry_length else _UNLIMITED,
            capacity=self.config.capacity,
        )
        cfg = self.config
        self._system = prompts.render_system(cfg.disabled_features(), cfg.prompt_style, cfg.action_format)
        self._tools = tuple(tool_schemas(cfg.prompt_style)) if cfg.action_format == "tools" else ()
        if self._tools:
            self.action_space = ToolAction()
        self._read_ahead: tuple[Any, _Reading] | None = None  # (action, its reading), by embedding_requests

    # -------------------------------------------------------------------------------- episode API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start an episode. ``options={"index": i}`` pins the episode; otherwise it is drawn."""
        self._begin(seed, options)
        self._reads = 0  # consecutive reads (reading) or reads of this question (answering)
        self._budget = self.config.turn_budget(len(self._chunks), len(self._answers))
        self._query = prompts.DEFAULT_QUERY
        self._feedback = ""
        self.memory.clear()
        return self._observe(), as_dict(self._info(_Turn()))

    def step(self, action: str | list[dict[str, Any]]) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Execute one response (its text, or with ``action_format="tools"`` a list of tool calls).
        Malformed parts become feedback; this never raises on what a model wrote."""
        self._check_action(action)
        turn = _Turn()
        reading = self._read(action)
        text, parsed = reading.text, reading.parsed
        if reading.cut:
            turn.fail(None, "response_truncated", reading.cut)
        for error in parsed.errors:
            turn.fail(None, error.code, error.message)
        if self.config.show_retrieval:
            self.memory.prefetch(self._entry_texts(parsed))
        question = self._question_index
        if self.ablation.add_chunk_documents and self._phase == READING:  # before the response, as alladd
            self._store_documents(_DOCUMENT_MARK.split(self._chunks[self._chunk_index]))
        for op in parsed.ops:
            if turn.aborted:
                break
            if self._phase == DONE:
                turn.fail(op, "episode_over", "The episode ended before this action.")
            else:
                self._apply(op, turn)
        turn.aborted |= parsed.aborted  # the parser already dropped the ops after a malformed tag
        if self.rules.scored_answers == "responses":
            self._collect_response_answer(text, turn.answered_questions, question)
        advanced = self._maybe_advance(turn)
        self._turn += 1
        terminated = self._phase == DONE
        truncated = not terminated and self._turn >= self._budget
        if truncated:
            self._phase = DONE
        self._feedback = "\n".join(f"- {e['message']}" for e in turn.errors) if self.rules.feedback else ""
        info = self._info(turn, advanced=advanced)
        reward = 0.0
        if terminated or truncated:
            reward = self._final_scores(info)
        return self._observe(), reward, terminated, truncated, as_dict(info)

    def embedding_requests(self, action: str | list[dict[str, Any]]) -> tuple[list[str], list[str]]:
        """The texts ``step(action)`` is expected to embed, as (entry texts, queries), so that a batch of
        envs can embed them all in one call first (:mod:`atommem_env.batch_embedding`).

        The entries of its Creates and Updates and the query the next observation retrieves with, when
        that is new to the store. An estimate that costs nothing in results: an entry its op then refuses
        is embedded for nothing, and a text left out is embedded by the step itself. The action is read
        here once: ``step`` reuses that reading when it is given the same action object next.
        """
        self._check_action(action)
        reading = self._read(action)
        self._read_ahead = (action, reading)
        cfg = self.config
        if not cfg.show_retrieval:
            return [], []
        entries = self._entry_texts(reading.parsed)
        if self.ablation.blank_retrieval:
            return entries, []
        queries = [op.text for op in reading.parsed.ops
                   if op.kind == A.UPDATE_QUERY and op.text and op.text != self._query]
        if not queries and entries and not len(self.memory):
            queries = [self._query]  # an empty store was searched with no query yet: its first entries bring one
        return entries, queries

    def use_embedder(self, embedder: Any) -> None:
        """Embed with ``embedder`` from now on, mid-episode too. It must give the vectors the current one
        gives: e.g. one :class:`~atommem_env.embedders.batch.TurnCache` around an equal embedder, shared by
        a batch of envs (:class:`atommem_env.batch_embedding.BatchEmbedding`).

        Raises:
            ConfigError: its vector size or layout (``sparse``) differs from the current embedder's.
        """
        current = self.memory.embedder
        if embedder.dim != current.dim or getattr(embedder, "sparse", False) != getattr(current, "sparse", False):
            raise ConfigError(f"use_embedder({embedder!r}): its vectors differ in size or layout from those of "
                              f"{current!r}; an env can only switch to an embedder that gives the same vectors.")
        self.memory.embedder = embedder

    def _entry_texts(self, parsed: A.ParsedAction) -> list[str]:
        """The texts a response's Creates and Updates would store (those the setting allows)."""
        writes = {A.ADD_MEMORY, A.MODIFY_MEMORY} if self.config.enable_update else {A.ADD_MEMORY}
        writes -= self.ablation.ignored
        return [text for op in parsed.ops if op.kind in writes and (text := op.text.strip())]

    @property
    def embedder(self) -> Any:
        """What the memory store embeds with."""
        return self.memory.embedder

    # ------------------------------------------------------------------------------ episode state
    def _read(self, action: str | list[dict[str, Any]]) -> _Reading:
        """The response text as used, cut to the response budget, or the tool calls that fit in it (each
        counted as its JSON), parsed under the env's action format; read once per action object."""
        ahead, self._read_ahead = self._read_ahead, None
        if ahead is not None and ahead[0] is action:
            return ahead[1]
        budget = self.config.response_tokens
        if not isinstance(action, str):
            calls = calls_within(action, budget, self.tokenizer)
            dropped = len(action) - len(calls)
            cut = (f"Your tool calls were cut at {budget} tokens: the last {dropped} were dropped."
                   if dropped else None)
            return _Reading("", parse_tool_calls(calls), cut)
        text, was_cut = truncate_tokens(action, budget, self.tokenizer)
        cut = f"Your response was cut at {budget} tokens." if was_cut else None
        parsed = parse_tool_calls(text) if self._tools else parse_with_rules(text, self.rules)
        return _Reading(text, parsed, cut)

    def _label(self, kind: str) -> str:
        """How feedback names an op: as its tag, or as its tool."""
        return kind if self._tools else f"<{kind}>"

    def _apply(self, op: A.Op, turn: _Turn) -> None:
        if op.kind in self.ablation.ignored:  # the reference ablation's `pass`: no effect, no feedback
            turn.ignore(op)
            turn.moves_on |= op.kind in self.ablation.ignored_advance
            return
        refusal = self._refusal(op, turn)
        if refusal:
            self._refused_read(op, turn, refusal)
            self._failed_write(op, turn)
            return
        try:
            handler = getattr(self, f"_do_{op.kind}")
            handler(op, turn)
        except MemoryOpError as error:
            turn.fail(op, error.code, f"{self._label(op.kind)}: {error}")
            self._failed_write(op, turn)

    def _refused_read(self, op: A.Op, turn: _Turn, refusal: tuple[str, str]) -> None:
        """Record a refusal. A query refused because the store is hidden still uses up a read, as a query
        does (SPEC §4: while answering the 4th skips the question), so a policy that keeps sending queries
        moves on instead of looping until the turn budget."""
        code, message = refusal
        if op.kind == A.UPDATE_QUERY and code == "disabled" and not self._use_read(turn):
            code, message = "too_many_reads", f"{message} {_SKIPPED}"
        turn.fail(op, code, message)

    def _failed_write(self, op: A.Op, turn: _Turn) -> None:
        """The reference counts a write tag whatever it did: it resets the reads, Create/Update advance."""
        if self.rules.failed_writes_count and op.kind in _WRITES and not turn.aborted:
            turn.moves_on |= op.kind in (A.ADD_MEMORY, A.MODIFY_MEMORY)
            self._after_write()

    def _refusal(self, op: A.Op, turn: _Turn) -> tuple[str, str] | None:
        """Why ``op`` may not run now, as (code, message), or None."""
        cfg = self.config
        if op.kind == A.UPDATE_MEMORY and (not cfg.show_scratchpad or cfg.freeze_scratchpad):
            return "disabled", "The short-term memory is disabled in this setting."
        if op.kind in (A.UPDATE_QUERY, A.ADD_MEMORY, A.MODIFY_MEMORY, A.DELETE_MEMORY):
            if not cfg.show_retrieval:
                return "disabled", "The long-term memory is disabled in this setting."
        if (op.kind == A.MODIFY_MEMORY and not cfg.enable_update) or (
            op.kind == A.DELETE_MEMORY and not cfg.enable_delete
        ):
            return "disabled", f"{self._label(op.kind)} is disabled in this setting."
        rules = self.rules
        if op.kind == A.FINAL_ANSWER and self._phase == READING and not rules.answer_while_reading:
            return "not_answering", "Answers are collected after the last section; keep reading."
        if op.kind == A.FINAL_ANSWER and turn.answered and not rules.several_answers_per_turn:
            return "extra_answer", "Only one question is answered per turn; the extra answer was ignored."
        if (op.kind == A.UPDATE_QUERY and self._phase == READING and self._reads >= cfg.max_reads
                and not rules.fourth_read_skips_question):
            return "too_many_reads", (
                f"Query refused: {cfg.max_reads} consecutive queries already; write memory first."
            )
        return None

    def _do_update_memory(self, op: A.Op, turn: _Turn) -> None:
        truncated = self.memory.write_scratchpad(op.text)
        turn.wrote_scratchpad = True
        self._after_write()
        warning = "scratchpad_truncated" if truncated else None
        if truncated:
            turn.errors.append({"code": "scratchpad_truncated", "tag": op.kind, "message":
                                f"Short-term memory cut to {self.config.scratchpad_tokens} tokens."})
        turn.done(op, warning=warning)

    def _do_update_query(self, op: A.Op, turn: _Turn) -> None:
        if not self._use_read(turn):
            turn.fail(op, "too_many_reads", _SKIPPED)
            return
        self._query = op.text or self._query  # an empty query (protocol empty_tags_act) keeps the old one
        turn.done(op)

    def _use_read(self, turn: _Turn) -> bool:
        """Count one read; False when it is one too many and skipped the question (while answering, or
        while reading under the reference's rules). While reading under ours the count stops at the limit:
        a query beyond it is refused before it runs."""
        limit = self.config.max_reads
        skips = self._phase == ANSWERING or self.rules.fourth_read_skips_question
        self._reads = self._reads + 1 if skips else min(self._reads + 1, limit)
        if not (skips and self._reads > limit):
            return True
        self._skipped[self._question_index] = True
        self._next_question(turn)
        return False

    def _do_add_memory(self, op: A.Op, turn: _Turn) -> None:
        if not op.text:  # the reference: an empty add stores nothing, yet advances and resets the reads
            turn.moves_on = True
            self._after_write()
            turn.done(op)
            return
        entry_id = self.memory.create(op.text)
        turn.created.append(entry_id)
        self._after_write()
        turn.done(op, entry_id)

    def _do_modify_memory(self, op: A.Op, turn: _Turn) -> None:
        if self.rules.entries_by_text:
            self._rewrite_by_text(op, turn)
            return
        entry_id = self.memory.id_at_rank(self._rank(op, turn))
        if not op.text:  # "Memory i:" with no text (protocol empty_tags_act): the reference deletes
            self.memory.delete(entry_id)
            turn.deleted.append(entry_id)
            turn.moves_on = True  # and still moves on, as after any well-formed modify
        else:
            self.memory.update(entry_id, op.text)
            turn.updated.append(entry_id)
        self._after_write()
        turn.done(op, entry_id)

    def _do_delete_memory(self, op: A.Op, turn: _Turn) -> None:
        if self.rules.entries_by_text:
            self._rewrite_by_text(op, turn)
            return
        entry_id = self.memory.id_at_rank(self._rank(op, turn))
        self.memory.delete(entry_id)
        turn.deleted.append(entry_id)
        self._after_write()
        turn.done(op, entry_id)

    def _rank(self, op: A.Op, turn: _Turn) -> int:
        """The 1-based rank an op names; the reference read "Memory 0" as index -1, the last shown."""
        rank = op.rank or 0
        if rank == 0 and self.rules.reference_ranks:
            if not self._shown:  # index -1 of an empty list: the reference's IndexError ends the response
                turn.aborted = True
                raise MemoryOpError("unknown_rank", "Memory 0 with no memory shown; the rest was skipped.")
            return len(self._shown)
        return rank

    def _rewrite_by_text(self, op: A.Op, turn: _Turn) -> None:
        """The reference's modify_document: delete the first entry whose text is the shown text, then
        insert the new text (if any) as a new entry. Delete is the same with no new text."""
        rank = self._rank(op, turn)
        if not 1 <= rank <= len(self._shown_full):  # the reference ignores it; info records why
            raise MemoryOpError("unknown_rank", f"Memory {rank} is not in the current list.")
        old = self.memory.find_text(self._shown_full[rank - 1])
        if old is not None:  # None: deleted earlier in this response; the reference still inserts
            self.memory.delete(old)
            turn.deleted.append(old)
        new_id = self.memory.create(op.text) if op.kind == A.MODIFY_MEMORY and op.text else None
        if new_id is not None:
            turn.created.append(new_id)
        turn.moves_on |= op.kind == A.MODIFY_MEMORY  # a well-formed modify always advances there
        self._after_write()
        turn.done(op, new_id if new_id is not None else old)

    def _do_final_answer(self, op: A.Op, turn: _Turn) -> None:
        self._answers[self._question_index] = op.text
        self._answer_texts[self._question_index] = op.raw
        turn.answered_questions.append(self._question_index)
        turn.done(op)
        self._next_question(turn)

    def _after_write(self) -> None:
        # A write ends a run of consecutive reads (while answering too, under the reference's rules).
        if self._phase == READING or self.rules.writes_reset_reads_when_answering:
            self._reads = 0

    def _next_question(self, turn: _Turn) -> None:
        turn.answered = True
        self._question_index += 1
        self._reads = 0
        if self._question_index >= len(self._answers):
            self._phase = DONE

    def _maybe_advance(self, turn: _Turn) -> bool:
        if self._phase != READING or turn.aborted:
            return False
        rule = self.config.advance_rule()
        moves_on = bool(turn.created or turn.updated or turn.moves_on)
        if rule == ablations.ADVANCE_ON_SCRATCHPAD_WRITE:  # store hidden: a refused Create/Update still moves on
            moves_on = turn.wrote_scratchpad or any(
                o["op"] in (A.ADD_MEMORY, A.MODIFY_MEMORY) and o["error"] == "disabled" for o in turn.ops)
        if rule != ablations.ADVANCE_ALWAYS and not moves_on:
            return False
        if self.config.store_everything:  # the clean switch: once per chunk, as the agent moves past it
            self._store_documents(_DOCUMENT_START.split(self._chunks[self._chunk_index]))
        self._chunk_index += 1
        if self._chunk_index >= len(self._chunks):
            self._phase = ANSWERING
            if not self.rules.reads_carry_into_answering:
                self._reads = 0
        return True

    def _store_documents(self, pieces: list[str]) -> None:
        """The "store everything" ablations: every document of a chunk becomes an entry (cut to the
        entry budget where the protocol has one; none beyond a full store)."""
        limit = self.config.max_entry_tokens if self.rules.limit_entry_length else _UNLIMITED
        texts = [truncate_tokens(piece.strip(), limit, self.tokenizer)[0] for piece in pieces]
        texts = [text for text in texts if text]
        self.memory.prefetch(texts)
        for text in texts:
            if self.config.capacity is None or len(self.memory) < self.config.capacity:
                self.memory.create(text)

    # ----------------------------------------------------------------------------- observations
    def _observe(self) -> dict[str, Any]:
        cfg = self.config
        shown = []
        if cfg.show_retrieval and not self.ablation.blank_retrieval:
            k = cfg.retrieval_depth(reading=self._phase == READING)
            shown = self.memory.retrieve(self._query, k, cfg.memory_list_tokens)
        self._shown = tuple(e.text for e in shown)  # before the user message, which lists them
        self._shown_full = tuple(self.memory.get(e.id) for e in shown)  # uncut, for entries_by_text
        return self._observation(
            self._system,
            scratchpad=self._visible_scratchpad() or "",
            query=self._query if cfg.show_retrieval else "",
            memories=self._shown,
            feedback=self._feedback,
            reads=self._reads,
            tools=copy.deepcopy(self._tools),  # the policy's to keep or change
        )

    def _user_message(self) -> str:
        cfg = self.config
        view = prompts.PromptView(
            scratchpad=self._visible_scratchpad(),
            query=self._query,
            memories=self._shown if cfg.show_retrieval else None,
            reads=self._reads,
            max_reads=cfg.max_reads,
            feedback=self._feedback,
            blank_memories=self.ablation.blank_retrieval,
        )
        if self._phase == READING:
            return prompts.render_reading(self._current.questions, self._chunks[self._chunk_index], view,
                                         self.config.prompt_style)
        return prompts.render_answering(self._current_question(), view, self.config.prompt_style,
                                        self.config.action_format)

    def _visible_scratchpad(self) -> str | None:
        """The scratchpad as shown: None when hidden (clean switch), "" when blanked (reference)."""
        if not self.config.show_scratchpad:
            return None
        return "" if self.ablation.blank_scratchpad else self.memory.scratchpad

    # ------------------------------------------------------------------------------------ info
    def _info(self, turn: _Turn, advanced: bool = False) -> StepInfo:
        counts = {stat: 0 for stat in OP_STAT.values()}
        for record in turn.ops:
            if record["ok"]:
                counts[OP_STAT[record["op"]]] += 1
        return {
            **self._episode_info(),
            "max_turns": self._budget,
            "advanced": advanced,
            "ops": turn.ops,
            "errors": turn.errors,
            "op_counts": counts,
            "num_invalid": sum(1 for e in turn.errors if e["code"] != "scratchpad_truncated"),
            "created_ids": turn.created,
            "updated_ids": turn.updated,
            "deleted_ids": turn.deleted,
            "memory_size": len(self.memory),
            "scratchpad_tokens": self.tokenizer.count(self.memory.scratchpad),
        }
