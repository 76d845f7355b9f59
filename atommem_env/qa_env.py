"""What every memory protocol over an episode source shares: episodes, chunks, observations, scores.

An episode is one long context and its questions. A protocol (AtomMem's
:class:`~atommem_env.env.MemoryQAEnv`, the MemAgent baseline
:class:`~atommem_env.memagent.MemAgentEnv`) reads the context chunk by chunk (the *reading*
phase), then answers the questions one per turn (the *answering* phase). This base class draws the
episode, chunks the context, builds the observation dict both protocols expose, and scores the
answers (by the scoring rules of the env's :class:`~atommem_env.protocol.Protocol`), so that the
protocols differ only in what a response does to memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from atommem_env.config import ContextConfig
from atommem_env.datasets.base import Episode, EpisodeSource
from atommem_env.errors import AtomMemError, ConfigError
from atommem_env.info import EpisodeInfo, StepInfo, as_dict
from atommem_env.observation import Phase, Progress
from atommem_env.reference_scoring import answer_of_response, matches
from atommem_env.scoring import NO_ANSWER, best_over_golds, f1_score, score_answer, substring_match
from atommem_env.shared_observations import ObservationSpace
from atommem_env.spaces import ToolAction, ToolSchemas, UnicodeText
from atommem_env.tokenization import chunk_text, make_tokenizer

# The phase as ``info["phase"]`` names it; the observation holds its :class:`Phase` code (a plain int).
READING, ANSWERING, DONE = "reading", "answering", "done"
PHASE_CODE = {READING: int(Phase.READING), ANSWERING: int(Phase.ANSWERING), DONE: int(Phase.ANSWERING)}
_INT_MAX = np.iinfo(np.int32).max


def observation_space() -> ObservationSpace:
    """The observation space every protocol shares (keys a protocol does not use stay empty).

    An :class:`ObservationSpace` (a ``spaces.Dict``) so that ``AsyncVectorEnv`` can share it.
    """
    text = UnicodeText()
    return ObservationSpace(
        {
            "system": text,
            "user": text,
            "phase": spaces.Discrete(2),
            "questions": spaces.Sequence(text),
            "question": text,
            "chunk": text,
            "scratchpad": text,
            "query": text,
            "memories": spaces.Sequence(text),
            "feedback": text,
            "progress": spaces.Box(0, _INT_MAX, shape=(len(Progress),), dtype=np.int64),
            "tools": ToolSchemas(),
        }
    )


class LongContextQAEnv(gym.Env[dict, str]):
    """Base class: an episode of a source, read chunk by chunk, then answered question by question.

    Subclasses set ``self.config`` (a :class:`~atommem_env.config.ContextConfig`) before calling
    ``__init__``, and implement :meth:`_user_message`. They keep the phase in ``self._phase``, the
    recorded answers in ``self._answers`` (what our scoring reads) and ``self._answer_texts`` (what a
    protocol's scoring reads: the raw answer, or under ``scored_answers="responses"`` what
    :meth:`_collect_response_answer` takes from each response), and the pointers ``_chunk_index`` /
    ``_question_index``.

    Args:
        source: the episodes (a benchmark builder or the synthetic generator).
        tokenizer: ``"regex"`` (offline default), or any :class:`~atommem_env.tokenization.Tokenizer`.
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns the current user message).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    config: ContextConfig

    def __init__(self, source: EpisodeSource, *, tokenizer: Any = "regex", render_mode: str | None = None) -> None:
        if not isinstance(source, EpisodeSource):
            raise ConfigError(f"source={source!r} is not an EpisodeSource (needs name, __len__, episode).")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ConfigError(f"render_mode={render_mode!r}; supported: None, 'ansi'.")
        self.source = source
        self.rules = self.config.rules
        self.tokenizer = make_tokenizer(tokenizer)
        self.render_mode = render_mode
        self.action_space = UnicodeText()
        self.observation_space = observation_space()
        self._episode: Episode | None = None

    # gymnasium types frames with its RenderFrame TypeVar, which no concrete return type matches.
    def render(self) -> str | None:  # type: ignore[override]
        """The current user message in ``"ansi"`` mode (after ``reset``), else None."""
        if self.render_mode == "ansi" and self._episode is not None:
            return self._user_message()
        return None

    def _user_message(self) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------------------------ episode state
    def _begin(self, seed: int | None, options: dict[str, Any] | None) -> None:
        """Seed, draw the episode (``options={"index": i}`` pins it), chunk it, clear the answers."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"index"}
        if unknown:
            raise ConfigError(f"Unknown reset option(s) {sorted(unknown)}; the only option is 'index'.")
        # Draw the index even when it is pinned, so (seed, index) fixes the episode rng either way.
        drawn = int(self.np_random.integers(len(self.source)))
        index = options.get("index", drawn)
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self.source):
            raise ConfigError(
                f"options['index']={index!r} is out of range: {self.source.name} has "
                f"{len(self.source)} episodes (0 to {len(self.source) - 1})."
            )
        episode_rng = np.random.default_rng(int(self.np_random.integers(2**63)))
        cfg = self.config
        self._episode = episode = self.source.episode(int(index), episode_rng)
        self._index = int(index)
        self._chunks = chunk_text(episode.context, self.tokenizer, cfg.chunk_tokens, cfg.chunk_overlap,
                                  max_tokens=cfg.max_context_tokens)
        self._chunk_index = 0
        self._question_index = 0
        self._answers = [NO_ANSWER] * len(episode.questions)
        self._answer_texts = [NO_ANSWER] * len(episode.questions)  # what the protocol's scoring reads
        self._extra_answers: list[tuple[str, int]] = []  # scored responses that answered no question
        self._skipped = [False] * len(episode.questions)
        self._phase = READING
        self._turn = 0

    @property
    def _current(self) -> Episode:
        """The episode being played; only read after ``reset``."""
        if self._episode is None:
            raise AtomMemError("No episode yet; call reset() first.")
        return self._episode

    def _check_action(self, action: Any) -> None:
        if self._episode is None or self._phase == DONE:
            raise AtomMemError("step() called on a finished or unstarted episode; call reset() first.")
        if isinstance(self.action_space, ToolAction):
            if not self.action_space.contains(action):
                raise TypeError(f"The action must be the response text (str) or a list of tool-call dicts, got "
                                f"{type(action).__name__}.")
        elif not isinstance(action, str):
            calls = isinstance(action, (list, tuple))
            hint = "; tool calls need an env built with action_format='tools'" if calls else ""
            raise TypeError(f"The action must be the response text (str), got {type(action).__name__}{hint}.")

    def _current_question(self) -> str:
        questions = self._current.questions
        return questions[min(self._question_index, len(questions) - 1)]

    # ----------------------------------------------------------------------------- observations
    def _observation(
        self,
        system: str,
        *,
        scratchpad: str = "",
        query: str = "",
        memories: Sequence[str] = (),
        feedback: str = "",
        reads: int = 0,
        tools: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """The observation dict: the rendered messages and the same content as structured fields."""
        reading = self._phase == READING
        counts = {
            Progress.CHUNK: self._chunk_index, Progress.CHUNKS: len(self._chunks),
            Progress.QUESTION: self._question_index, Progress.QUESTIONS: len(self._answers),
            Progress.READS: reads, Progress.TURN: self._turn,
        }
        progress = np.array([counts[field] for field in Progress], dtype=np.int64)
        return {
            "system": system,
            "user": self._user_message(),
            "phase": PHASE_CODE[self._phase],
            "questions": tuple(self._current.questions),
            "question": "" if reading else self._current_question(),
            "chunk": self._chunks[self._chunk_index] if reading else "",
            "scratchpad": scratchpad,
            "query": query,
            "memories": tuple(memories),
            "feedback": feedback,
            "progress": progress,
            "tools": tuple(tools),
        }

    # ------------------------------------------------------------------------------------ info
    def _episode_info(self) -> EpisodeInfo:
        """The ``info`` keys that say where the episode stands (plain, JSON-serializable values)."""
        return {
            "episode_id": self._current.episode_id,
            "index": self._index,
            "phase": self._phase,
            "turn": self._turn,
            "chunk_index": self._chunk_index,
            "num_chunks": len(self._chunks),
            "question_index": self._question_index,
            "num_questions": len(self._answers),
        }

    def _collect_response_answer(self, response: str, answered: Sequence[int], question: int) -> None:
        """Protocol ``scored_answers="responses"``: the reference scores each response once, as the
        answer of the last question it answered, or as an extra answer if it answered none.

        Args:
            response: the response as the env read it.
            answered: the questions it answered, in order.
            question: the current question when the response came (for an extra answer's own gold).
        """
        answer = answer_of_response(response)
        for q in answered:
            self._answer_texts[q] = NO_ANSWER
        if answered:
            self._answer_texts[answered[-1]] = answer or NO_ANSWER
        elif answer is not None:
            self._extra_answers.append((answer, min(question, len(self._answers) - 1)))

    def _final_scores(self, info: StepInfo) -> float:
        """Our scoring, or the protocol's where a scoring rule is switched; adds the results to ``info``."""
        reward = self._own_gold_scores(info)
        return self._protocol_scores(info) if self.rules.custom_scoring else reward

    def _own_gold_scores(self, info: StepInfo) -> float:
        """Score every answer against its own question's gold; add the results to ``info``."""
        episode = self._current
        aliases = episode.aliases or ((),) * len(episode.answers)
        scores = [score_answer(pred, (gold,)) for pred, gold in zip(self._answers, episode.answers, strict=True)]
        info["answers"] = list(self._answers)
        info["golds"] = list(episode.answers)
        info["aliases"] = [list(a) for a in aliases]
        info["skipped"] = list(self._skipped)
        info["em"] = [s.em for s in scores]
        info["f1"] = [s.f1 for s in scores]
        info["substring_em"] = [s.substring_em for s in scores]
        info["reward"] = reward = float(np.mean(info["em"]))
        return reward

    def _protocol_scores(self, info: StepInfo) -> float:
        """Re-score ``info`` by the protocol's scoring rules (the reference's, where they are switched)."""
        rules = self.rules
        golds = self._current.answers

        def allowed(q: int) -> tuple[str, ...]:
            return tuple(golds) if rules.gold_matching == "any" else (golds[q],)

        def score(text: str, q: int) -> float:
            return matches(text, allowed(q), normalization=rules.normalization, require_box=rules.require_box)

        info["em"] = [score(text, q) for q, text in enumerate(self._answer_texts)]
        info["f1"] = [best_over_golds(f1_score, a, allowed(q)) for q, a in enumerate(self._answers)]
        info["substring_em"] = [best_over_golds(substring_match, a, allowed(q)) for q, a in enumerate(self._answers)]
        # Responses that answered no question but are scored all the same (a stray box, say); an extra
        # key of the reference protocols only, so outside StepInfo's declared keys.
        as_dict(info)["extra_answer_em"] = extra = [score(text, q) for text, q in self._extra_answers]
        # The reference divides the sum over scored responses by the number of questions (it can pass 1).
        info["reward"] = reward = (sum(info["em"]) + sum(extra)) / len(golds)
        return reward
