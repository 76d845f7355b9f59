"""MemAgentEnv: the MemAgent baseline protocol (SPEC §9) on the same episodes as MemoryQAEnv.

MemAgent (BytedTsinghua-SIA/MemAgent) keeps one fixed-size free-text memory and **overwrites it
entirely** after every chunk: each reading turn shows the questions, the memory and the next chunk,
and the model's whole response becomes the new memory, cut to ``memory_tokens`` (1,024) tokens. The
chunk advances every turn. After the last chunk come the answer turns, one per question: the content
of the response's last ``\\boxed{}`` (the plain response if there is none) is the answer, scored
against that question's own gold exactly as in :class:`~atommem_env.env.MemoryQAEnv`. Under our
protocol an episode is therefore exactly ``num_chunks + num_questions`` turns long and never truncated.

Data, chunking, tokenizers, observation keys and scoring are MemoryQAEnv's (shared through
:class:`~atommem_env.qa_env.LongContextQAEnv`), so the rollout and evaluation code and every policy
run unchanged. How the observation maps onto the shared keys:

- ``system`` is empty and ``user`` is MemAgent's prompt (verbatim, :mod:`atommem_env.prompts`):
  the reference sends a lone user message, and :func:`atommem_env.as_messages` does the same. The
  ``memagent_prompt`` option picks the answering template: ``"memagent"`` (MemAgent's own, the
  default) or ``"atommem-paper"``, the AtomMem paper's baseline, which adds one sentence ("Output the
  answer only as an exact match—do not add any description."); ``evaluate.py --preset memagent``
  uses the latter, so its table compares with the paper's MemAgent row.
- ``scratchpad`` holds the memory: like AtomMem's scratchpad it is free text replaced wholesale by
  each response and shown in full. An empty memory is shown as "No previous memory", the text
  MemAgent's own code shows before the first chunk.
- ``questions`` is every question of the episode. While reading, MemAgent's ``<problem>`` holds all
  of them, one per line, as the AtomMem reference's multi-question MemAgent baseline does; each
  answer turn's ``<problem>`` holds only the current question.
- ``query``, ``memories`` and ``feedback`` stay empty: there is no store, and no response is
  invalid (any text is a memory), so ``info`` reports no ops and no errors.

Under ``protocol="reference"`` it plays and scores as the AtomMem reference's multi-question MemAgent
baseline did (RUCBM/AtomMem at e5a9b3d, ``recurrent/impls/memory_multiquery.py``; the rules are fields
of :class:`~atommem_env.protocol.Protocol`, each switchable alone): the text of a response decides what
it is (``parse_action``, :301-308): one containing ``\\boxed{`` answers the current question, in either
phase (``answer_while_reading``; the chunk then does not advance), and one without it is memory, also
while answering, where the same question is then asked again (``unboxed_answer_rewrites_memory``);
episodes end after 41 responses (``turn_budget``, :237-240); the memory is cut only by the response
budget (``limit_scratchpad``) and shown as stored, ``None`` before the first chunk's response
(``raw_memory_text``); and every response is scored by the reference's reward (the scoring rules,
shared with :class:`~atommem_env.env.MemoryQAEnv`). The rules about the store, the action tags and
feedback have no meaning here and are ignored (:data:`~atommem_env.protocol.MEMAGENT_RULES` lists the
rules read). Our own rules, marked **[fix]** in the spirit of SPEC, show MemAgent's "No previous
memory" for an empty memory and keep reading and answering separate phases.
"""

from __future__ import annotations

from typing import Any

from atommem_env import prompts
from atommem_env.actions import extract_boxed
from atommem_env.config import MemAgentConfig
from atommem_env.datasets.base import EpisodeSource
from atommem_env.env import OP_STAT
from atommem_env.info import StepInfo, as_dict
from atommem_env.qa_env import ANSWERING, DONE, READING, LongContextQAEnv
from atommem_env.tokenization import truncate_tokens

# MemoryQAEnv's operation counters, all zero: MemAgent has no memory operations.
_NO_OPS = {stat: 0 for stat in OP_STAT.values()}


class MemAgentEnv(LongContextQAEnv):
    """Long-context QA under the MemAgent protocol: one overwritten memory, then one answer per question.

    Args:
        source: the episodes (a benchmark builder or the synthetic generator).
        tokenizer: ``"regex"`` (offline default), or any :class:`~atommem_env.tokenization.Tokenizer`;
            it chunks the context and measures the memory.
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns the current user message).
        **options: fields of :class:`~atommem_env.config.MemAgentConfig` (chunking, ``memory_tokens``,
            ``response_tokens``, ``memagent_prompt``: MemAgent's answering template or the AtomMem paper's).
    """

    config: MemAgentConfig

    def __init__(
        self,
        source: EpisodeSource,
        *,
        tokenizer: Any = "regex",
        render_mode: str | None = None,
        **options: Any,
    ) -> None:
        self.config = MemAgentConfig.from_kwargs(**options)
        super().__init__(source, tokenizer=tokenizer, render_mode=render_mode)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start an episode. ``options={"index": i}`` pins the episode; otherwise it is drawn."""
        self._begin(seed, options)
        self._memory = ""
        self._memory_written = False  # the reference showed "None" until the first response was stored
        # Ours: exactly one turn per chunk and per question, so no episode is ever cut off.
        self._budget = self.rules.turn_budget or len(self._chunks) + len(self._answers)
        return self._observe(), as_dict(self._info(advanced=False, memory_truncated=False))

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """A response either answers the current question or becomes the whole memory. Never raises on text."""
        self._check_action(action)
        text, _ = truncate_tokens(action, self.config.response_tokens, self.tokenizer)
        question = self._question_index
        reading = self._phase == READING
        answers = self._is_answer(text)
        memory_truncated = False
        if answers:
            self._record_answer(text)
        else:
            memory_truncated = self._overwrite_memory(action)
        if self.rules.scored_answers == "responses":
            self._collect_response_answer(text, [question] if answers else [], question)
        self._turn += 1
        terminated = self._phase == DONE
        truncated = not terminated and self._turn >= self._budget
        if truncated:
            self._phase = DONE
        info = self._info(advanced=reading and not answers, memory_truncated=memory_truncated)
        reward = self._final_scores(info) if terminated or truncated else 0.0
        return self._observe(), reward, terminated, truncated, as_dict(info)

    # ------------------------------------------------------------------------------ episode state
    def _is_answer(self, text: str) -> bool:
        """Whether the response answers the current question; if not, it becomes the memory.

        Ours: every answering response answers, no reading response does. The reference decided by
        ``"\\boxed{" in text`` in both phases (ref@e5a9b3d memory_multiquery.py:301), which the
        protocol rules ``answer_while_reading`` and ``unboxed_answer_rewrites_memory`` switch on.
        """
        boxed = "\\boxed{" in text
        if self._phase == READING:
            return boxed and self.rules.answer_while_reading
        return boxed or not self.rules.unboxed_answer_rewrites_memory

    def _overwrite_memory(self, response: str) -> bool:
        """The response becomes the whole memory; while reading, move to the next chunk.

        Returns whether the memory was cut: to ``memory_tokens`` (ours), or, where the protocol does not
        limit it (the reference, whose generation cap was the only bound), to ``response_tokens``.
        """
        limit = self.config.memory_tokens if self.rules.limit_scratchpad else self.config.response_tokens
        self._memory, cut = truncate_tokens(response, limit, self.tokenizer)
        self._memory_written = True
        if self._phase == READING:
            self._chunk_index += 1
            if self._chunk_index >= len(self._chunks):
                self._phase = ANSWERING
        return cut

    def _record_answer(self, text: str) -> None:
        """The last ``\\boxed{}`` of the response (or the plain response) answers the current question."""
        self._answers[self._question_index] = extract_boxed(text)
        self._answer_texts[self._question_index] = text  # the whole response, as the reference scored it
        self._question_index += 1
        if self._question_index >= len(self._answers):
            self._phase = DONE

    # ----------------------------------------------------------------------------- observations
    def _observe(self) -> dict[str, Any]:
        return self._observation("", scratchpad=self._memory)

    def _user_message(self) -> str:
        verbatim = self.rules.raw_memory_text
        memory = self._memory if self._memory_written or not verbatim else "None"  # ref: str(None)
        if self._phase == READING:
            return prompts.render_memagent_reading(
                self._current.questions, self._chunks[self._chunk_index], memory, verbatim=verbatim
            )
        return prompts.render_memagent_answering(self._current_question(), memory,
                                                 self.config.memagent_prompt, verbatim=verbatim)

    # ------------------------------------------------------------------------------------ info
    def _info(self, *, advanced: bool, memory_truncated: bool) -> StepInfo:
        """MemoryQAEnv's info keys (no ops, no errors, no store), plus the memory's size and cut."""
        return {
            **self._episode_info(),
            "max_turns": self._budget,
            "advanced": advanced,
            "ops": [],
            "errors": [],
            "op_counts": dict(_NO_OPS),
            "num_invalid": 0,
            "created_ids": [],
            "updated_ids": [],
            "deleted_ids": [],
            "memory_size": 0,  # entries in a store: MemAgent has none
            "scratchpad_tokens": self.tokenizer.count(self._memory),
            "memory_truncated": memory_truncated,
        }
