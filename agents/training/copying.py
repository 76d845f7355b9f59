"""Copying, the skill a memory agent needs first: a task that trains it and a probe that measures it.

A small model trained from scratch on teacher turns learns the action format long before it learns to
copy names out of its prompt (docs/TRAINING.md): it writes entries in the chunk's style with invented
names. Copying needs an induction mechanism (attend to the token after an earlier occurrence of the
current one), which language models form late. Two tools:

- :func:`copy_task_records`: episodes of a "repeat the text" task whose user message is a span of an
  article chunk from teacher episodes (names and all) and whose response is the same span, in the
  ``trajectories.jsonl`` shape, so ``experiments/sft.py`` trains on them as on teacher turns (alone or
  mixed with them: ``--trajectories teacher.jsonl copy.jsonl``);
- :func:`continue_task_records`: the same chunks, but the model must *find* its place: the user message
  is a whole chunk and a cue (a few words that occur once in it), the response the words that follow the
  cue. A span that starts at a random place cannot be produced by position alone, as a "repeat the
  text" response can; it needs the induction mechanism itself;
- :func:`copy_scores`: the tasks' own readout: greedy responses to held-out task episodes, scored
  exactly and word by word;
- :func:`induction_nll`: a teacher-forced probe of the same skill, cheaper and earlier than sampling
  whole episodes: the mean negative log-likelihood of prompt tokens whose n-gram ending there already
  occurred earlier in the same prompt (a model that copies predicts them well) against tokens whose
  n-gram is new. Without induction the first is far above the second; as it forms, the first falls below.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agents.chat import chat_prompt_ids
from atommem_env.errors import ConfigError, DataError

COPY_SYSTEM = "Repeat the user's text exactly."
CONTINUE_SYSTEM = "Find the words after 'Continue after:' in the text and write the words that follow them there."
CONTINUE_CUE = "Continue after:"
# The article chunk of an AtomMem reading prompt, compact style or the paper's (atommem_env.prompts).
_CHUNK = re.compile(r"(?:Article chunk:|This is the article:)\n(.*?)\n\n(?:Store the facts|Important:)", re.S)


def chunk_of(user: str) -> str | None:
    """The article chunk of a turn's user message, stripped (``None`` when it shows none)."""
    match = _CHUNK.search(user)
    return (match.group(1).strip() or None) if match else None


def chunk_texts(records: Iterable[dict[str, Any]]) -> list[str]:
    """The article chunks of every turn of these trajectory records (turns without one are skipped)."""
    chunks = (chunk_of(turn.get("user", "")) for record in records for turn in record.get("turns", []))
    return [chunk for chunk in chunks if chunk]


def copy_task_records(records: Sequence[dict[str, Any]], count: int, *, seed: int = 0, min_words: int = 8,
                      max_words: int = 40) -> list[dict[str, Any]]:
    """``count`` one-turn copy episodes built from the chunks of ``records`` (trajectory JSON lines).

    Each takes a random chunk and a random span of ``min_words`` to ``max_words`` whitespace-separated
    words of it (all of a shorter chunk); the user message and the response are that span, the reward is
    1. Spans are drawn with ``random.Random(seed)``, so a file is reproducible.

    Raises:
        ConfigError: a bad count or span length.
        DataError: no record has an article chunk.
    """
    chunks = _task_chunks(records, count, min_words, max_words, "copy task")
    rng = random.Random(seed)
    env_id = records[0].get("env_id", "copy")
    out = []
    for index in range(count):
        words = rng.choice(chunks).split()
        length = min(len(words), rng.randint(min_words, max_words))
        start = rng.randint(0, len(words) - length)
        span = " ".join(words[start:start + length])
        out.append(_one_turn_record(env_id, index, COPY_SYSTEM, span, span))
    return out


def continue_task_records(records: Sequence[dict[str, Any]], count: int, *, seed: int = 0, cue_words: int = 3,
                          min_words: int = 4, max_words: int = 16) -> list[dict[str, Any]]:
    """``count`` one-turn "continue the text" episodes built from the chunks of ``records``.

    Each takes a random chunk and a random place in it where the ``cue_words`` words ending there occur
    only once in the chunk. The user message is the whole chunk, a blank line and ``Continue after:``
    with those words; the response is the ``min_words`` to ``max_words`` words that follow them (fewer
    at the chunk's end; at least one). Drawn with ``random.Random(seed)``, so a file is reproducible.

    Raises:
        ConfigError: a bad count, cue or span length.
        DataError: no chunk has a place with a unique cue and a word after it.
    """
    if cue_words < 1:
        raise ConfigError(f"continue task: cue_words must be at least 1, got {cue_words}")
    chunks = _task_chunks(records, count, min_words, max_words, "continue task")
    split = [(chunk, chunk.split()) for chunk in chunks]
    places = [(chunk, words, ends) for chunk, words in split if (ends := unique_cue_ends(words, cue_words))]
    if not places:
        raise DataError(f"continue task: no chunk has {cue_words} words that occur once in it and a word after them")
    rng = random.Random(seed)
    env_id = records[0].get("env_id", "continue")
    out = []
    for index in range(count):
        chunk, words, ends = rng.choice(places)
        end = rng.choice(ends)
        length = rng.randint(min_words, max_words)
        user = f"{chunk}\n\n{CONTINUE_CUE} {' '.join(words[end - cue_words:end])}"
        out.append(_one_turn_record(env_id, index, CONTINUE_SYSTEM, user, " ".join(words[end:end + length])))
    return out


def unique_cue_ends(words: Sequence[str], cue_words: int) -> list[int]:
    """Indices ``end`` (``cue_words <= end < len(words)``) whose cue ``words[end - cue_words:end]`` occurs once."""
    cues = [tuple(words[start:start + cue_words]) for start in range(len(words) - cue_words + 1)]
    counts = Counter(cues)
    return [end for end in range(cue_words, len(words)) if counts[cues[end - cue_words]] == 1]


def _task_chunks(records: Sequence[dict[str, Any]], count: int, min_words: int, max_words: int,
                 task: str) -> list[str]:
    """The chunks of ``records`` after checking a task's settings (the checks both tasks share)."""
    if count < 1 or not 1 <= min_words <= max_words:
        raise ConfigError(f"{task}: need count >= 1 and 1 <= min_words <= max_words, got count={count}, "
                          f"min_words={min_words}, max_words={max_words}")
    chunks = chunk_texts(records)
    if not chunks:
        raise DataError(f"{task}: no turn of these trajectories has an 'Article chunk:' to copy from; "
                        "pass an AtomMem env's teacher trajectories (evaluate.py's trajectories.jsonl)")
    return chunks


def _one_turn_record(env_id: str, index: int, system: str, user: str, response: str) -> dict[str, Any]:
    turn = {"user": user, "response": response, "ops": [], "errors": [], "op_counts": {}, "memory_size": 0,
            "phase": "copy"}
    return {"policy": "copy-task", "env_id": env_id, "index": index, "episode_id": f"copy/{index}",
            "seed": index, "system": system, "turns": [turn], "reward": 1.0, "terminated": True,
            "truncated": False, "result": {"em": [1.0], "f1": [1.0], "substring_em": [1.0]}}


def score_copy(produced: str, expected: str) -> tuple[float, float]:
    """(exact, words in place): 1.0 when ``produced`` has exactly ``expected``'s words, else 0.0; and the
    share of ``expected``'s words that ``produced`` has at the same word position."""
    got, want = produced.split(), expected.split()
    in_place = sum(a == b for a, b in zip(got, want, strict=False)) / len(want) if want else float(not got)
    return float(got == want), in_place


def copy_scores(model: Any, tokenizer: Any, episodes: Iterable[dict[str, Any]], *,
                extra_tokens: int = 8) -> list[tuple[float, float]]:
    """:func:`score_copy` of the model's greedy response to each one-turn task episode (a record of
    :func:`copy_task_records` or :func:`continue_task_records`), prompted as the policy prompts, with
    room for the expected response's tokens and ``extra_tokens`` more."""
    import torch

    scores = []
    for episode in episodes:
        (turn,) = episode["turns"]
        ids, _ = chat_prompt_ids(tokenizer, {"system": episode["system"], "user": turn["user"]}, max_tokens=1 << 30)
        budget = len(tokenizer(turn["response"], add_special_tokens=False)["input_ids"]) + extra_tokens
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=budget, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        produced = tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
        scores.append(score_copy(produced, turn["response"]))
    return scores


@dataclass(frozen=True)
class InductionNLL:
    """Mean NLL (nats) of prompt tokens that end a repeated n-gram and of those that end a new one."""

    repeated: float
    new: float
    repeated_tokens: int
    new_tokens: int


def repeated_positions(ids: Sequence[int], n: int) -> list[bool]:
    """For each position ``i >= n - 1``: whether the n-gram ``ids[i-n+1 : i+1]`` occurred earlier in ``ids``."""
    seen: set[tuple[int, ...]] = set()
    flags = []
    for end in range(n - 1, len(ids)):
        gram = tuple(ids[end - n + 1:end + 1])
        flags.append(gram in seen)
        seen.add(gram)
    return flags


def induction_nll(model: Any, tokenizer: Any, conversations: Iterable[tuple[str, str]], *, n: int = 4) -> InductionNLL:
    """The probe of the module docstring over ``(system, user)`` conversations, prompted as the policy prompts.

    Position ``i`` (``i >= n - 1``, ``i >= 1``) counts as *repeated* when the n-gram ending at token ``i``
    occurred earlier in the same prompt, else *new*; its NLL is ``-log p(token i | tokens < i)``.
    """
    import torch

    if n < 2:
        raise ConfigError(f"induction probe: n must be at least 2, got {n}")
    sums = {True: 0.0, False: 0.0}
    counts = {True: 0, False: 0}
    for system, user in conversations:
        ids, _ = chat_prompt_ids(tokenizer, {"system": system, "user": user}, max_tokens=1 << 30)
        tokens = torch.tensor([ids])
        with torch.no_grad():
            logits = model(input_ids=tokens).logits[0, :-1].float()
        nll = -torch.log_softmax(logits, dim=-1).gather(-1, tokens[0, 1:, None]).squeeze(-1)
        for end, repeated in zip(range(n - 1, len(ids)), repeated_positions(ids, n), strict=True):
            sums[repeated] += float(nll[end - 1])
            counts[repeated] += 1
    if not counts[True] or not counts[False]:
        raise DataError(f"induction probe: these prompts have {counts[True]} repeated and {counts[False]} new "
                        f"{n}-grams; both are needed (pass prompts with article chunks)")
    return InductionNLL(sums[True] / counts[True], sums[False] / counts[False], counts[True], counts[False])


def task_episodes(task: str, records: Sequence[dict[str, Any]], count: int, seed: int, **options: int) -> list[dict]:
    """``count`` episodes of ``task`` (``repeat`` or ``continue``) from ``records``, default lengths unless given."""
    build = copy_task_records if task == "repeat" else continue_task_records
    return build(records, count, seed=seed, **options)


def load_model(name: str) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) of a model folder or name, on the CPU (the tasks' tensors are built
    there), float32, torch on one thread."""
    import torch

    from agents.models import load_causal_lm

    torch.set_num_threads(1)
    return load_causal_lm(name, device="cpu")


def score_models(records: Sequence[dict[str, Any]], models: Sequence[str], *, task: str, count: int,
                 seed: int) -> list[dict[str, Any]]:
    """Per model: the exact rate (with its 95 % bootstrap interval) and the words in place of its greedy
    answers to ``count`` task episodes built from ``records``."""
    from agents.training.stats import bootstrap_ci

    episodes = task_episodes(task, records, count, seed)
    rows = []
    for name in models:
        scores = copy_scores(*load_model(name), episodes)
        exact = bootstrap_ci([[e] for e, _ in scores])
        rows.append({"model": name, "task": task, "episodes": len(scores), "exact": exact.estimate,
                     "exact_lo": exact.lo, "exact_hi": exact.hi,
                     "words_in_place": sum(w for _, w in scores) / len(scores)})
    return rows


def probe_models(records: Sequence[dict[str, Any]], models: Sequence[str], *, prompts: int,
                 n: int) -> list[dict[str, Any]]:
    """Per model: the induction probe on the first ``prompts`` reading turns of ``records``."""
    conversations = [(r["system"], t["user"]) for r in records for t in r["turns"] if chunk_of(t["user"])][:prompts]
    return [{"model": name, "prompts": len(conversations), "n": n,
             **vars(induction_nll(*load_model(name), conversations, n=n))} for name in models]
