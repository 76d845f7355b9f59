"""Copying (agents/training/copying.py, experiments/copying.py): the copy task is made of spans of real
article chunks and trains through sft.py's sample path unchanged; the induction probe counts repeated and
new n-grams exactly and averages the right log-probabilities."""

import json
import math

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import atommem_env  # noqa: F401
from agents import HeuristicMemoryPolicy
from agents.training.copying import (
    CONTINUE_CUE,
    CONTINUE_SYSTEM,
    COPY_SYSTEM,
    chunk_texts,
    continue_task_records,
    copy_scores,
    copy_task_records,
    induction_nll,
    repeated_positions,
    score_copy,
    unique_cue_ends,
)
from agents.training.rollout import Trajectory, rollout
from atommem_env.errors import ConfigError, DataError
from experiments import copying


def teacher_records(**options):
    make = lambda: gym.make("AtomMem-Synthetic-Tiny-v0", **options)  # noqa: E731
    return [t.to_json() for t in rollout(make, HeuristicMemoryPolicy(), seeds=range(3), indices=range(3))]


@pytest.fixture(scope="module")
def records():
    return teacher_records()


@pytest.mark.parametrize("style", ["compact", "paper"])
def test_chunks_are_the_articles_of_reading_turns_in_both_prompt_styles(style):
    played = teacher_records(prompt_style=style)
    header = "Article chunk:" if style == "compact" else "This is the article:"
    reading = [t for r in played for t in r["turns"] if header in t["user"]]
    chunks = chunk_texts(played)
    assert len(chunks) == len(reading) > 0 and len(reading) < sum(len(r["turns"]) for r in played)
    for chunk, turn in zip(chunks, reading, strict=True):
        before, after = turn["user"].split(chunk)
        assert before.rstrip().endswith(header) and after.lstrip().startswith(("Store the facts", "Important:"))
        assert "Store the facts" not in chunk and "Important:" not in chunk


def test_copy_episodes_are_reproducible_spans_of_chunks_whose_response_is_the_span(records):
    episodes = copy_task_records(records, 50, seed=3, min_words=5, max_words=12)
    assert episodes == copy_task_records(records, 50, seed=3, min_words=5, max_words=12)
    assert episodes != copy_task_records(records, 50, seed=4, min_words=5, max_words=12)
    chunks = [" ".join(c.split()) for c in chunk_texts(records)]
    for episode in episodes:
        (turn,) = episode["turns"]
        assert turn["user"] == turn["response"] and episode["system"] == COPY_SYSTEM
        assert 5 <= len(turn["user"].split()) <= 12
        assert any(f" {turn['user']} " in f" {chunk} " for chunk in chunks)  # whole words of one chunk
        assert Trajectory.from_json(json.loads(json.dumps(episode))).reward == 1.0


def test_copy_episodes_train_through_the_sft_sample_path(records, tiny_lm_path):
    from transformers import AutoTokenizer

    from agents.training.sft_data import end_of_turn_ids, teacher_samples

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    episodes = [Trajectory.from_json(e) for e in copy_task_records(records, 4, seed=0)]
    samples, stats = teacher_samples(episodes, tokenizer, min_reward=0.5, max_prompt_tokens=1024, max_seq_tokens=2048)
    assert stats.samples == 4
    for sample, episode in zip(samples, episodes, strict=True):
        span = episode.turns[0].user
        span_ids = tokenizer(span, add_special_tokens=False)["input_ids"]
        assert list(sample.response_ids) == span_ids + end_of_turn_ids(tokenizer)
        prompt = list(sample.prompt_ids)
        assert any(prompt[i:i + len(span_ids)] == span_ids for i in range(len(prompt)))  # the span to copy


def test_bad_copy_settings_and_data_without_chunks_are_refused(records):
    with pytest.raises(ConfigError, match="min_words"):
        copy_task_records(records, 5, min_words=10, max_words=5)
    with pytest.raises(ConfigError, match="count"):
        copy_task_records(records, 0)
    with pytest.raises(DataError, match="Article chunk"):
        copy_task_records([{"turns": [{"user": "no article here"}]}], 5)


def test_continue_episodes_ask_for_the_words_after_a_cue_found_once_in_a_whole_chunk(records):
    episodes = continue_task_records(records, 60, seed=2, cue_words=3, min_words=2, max_words=6)
    assert episodes == continue_task_records(records, 60, seed=2, cue_words=3, min_words=2, max_words=6)
    assert episodes != continue_task_records(records, 60, seed=5, cue_words=3, min_words=2, max_words=6)
    chunks = set(chunk_texts(records))
    for episode in episodes:
        (turn,) = episode["turns"]
        chunk, cue_line = turn["user"].rsplit("\n\n", 1)
        assert chunk in chunks and episode["system"] == CONTINUE_SYSTEM and cue_line.startswith(CONTINUE_CUE)
        words, cue = chunk.split(), cue_line[len(CONTINUE_CUE):].split()
        starts = [i for i in range(len(words)) if words[i:i + 3] == cue]
        assert len(cue) == 3 and len(starts) == 1  # the cue says where, unambiguously
        follow = words[starts[0] + 3:]
        response = turn["response"].split()
        assert response == follow[:len(response)] and 1 <= len(response) <= 6
        assert len(response) >= 2 or len(follow) == 1  # shorter than min_words only at the chunk's end
    starts_seen = {ep["turns"][0]["user"].rsplit(CONTINUE_CUE, 1)[1] for ep in episodes}
    assert len(starts_seen) > 40  # places vary, so position alone cannot answer


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("abc"), max_size=20), st.integers(1, 3))
def test_unique_cue_ends_are_exactly_the_places_after_a_cue_that_occurs_once(words, cue_words):
    ends = unique_cue_ends(words, cue_words)
    grams = [words[s:s + cue_words] for s in range(len(words) - cue_words + 1)]
    expected = [end for end in range(cue_words, len(words)) if grams.count(words[end - cue_words:end]) == 1]
    assert ends == expected


def test_bad_continue_settings_and_chunks_without_a_unique_cue_are_refused(records):
    with pytest.raises(ConfigError, match="cue_words"):
        continue_task_records(records, 5, cue_words=0)
    with pytest.raises(ConfigError, match="min_words"):
        continue_task_records(records, 5, min_words=0)
    repetitive = [{"turns": [{"user": "Article chunk:\na a a a a a\n\nStore the facts"}]}]
    with pytest.raises(DataError, match="occur once"):
        continue_task_records(repetitive, 5)


def test_a_copy_is_scored_exactly_and_word_by_word():
    assert score_copy("in 1967. Nakre", "in 1967. Nakre") == (1.0, 1.0)
    assert score_copy("  in 1967.\nNakre ", "in 1967. Nakre") == (1.0, 1.0)  # words, not spacing
    assert score_copy("in 1968. Nakre Binze", "in 1967. Nakre") == (0.0, 2 / 3)  # extra words: not exact
    assert score_copy("1967. Nakre", "in 1967. Nakre") == (0.0, 0.0)  # shifted words are not in place
    assert score_copy("", "") == (1.0, 1.0) and score_copy("x", "") == (0.0, 0.0)


class EchoModel:
    """A 'model' whose greedy continuation is a fixed id sequence (the expected response's ids)."""

    def __init__(self, continuation):
        self.continuation = continuation

    def generate(self, input_ids, attention_mask, max_new_tokens, do_sample, pad_token_id):
        import torch

        assert not do_sample and attention_mask.shape == input_ids.shape
        return torch.cat([input_ids, torch.tensor([self.continuation[:max_new_tokens]])], dim=1)


class CharTokenizer:
    """Characters as token ids; the chat is the user message alone (what is prompted is not scored here)."""

    chat_template = "chars"
    pad_token_id = 0

    def apply_chat_template(self, messages, tools=None, add_generation_prompt=True, tokenize=True):
        return [ord(c) for c in messages[-1]["content"]]

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(int(i)) for i in ids)


def test_copy_scores_score_the_greedy_answer_with_room_for_the_expected_one(records):
    pytest.importorskip("torch")
    tokenizer = CharTokenizer()
    (episode,) = continue_task_records(records, 1, seed=0)
    expected = episode["turns"][0]["response"]
    assert copy_scores(EchoModel([ord(c) for c in expected + " and more"]), tokenizer, [episode],
                       extra_tokens=0) == [(1.0, 1.0)]  # cut at the expected length
    assert copy_scores(EchoModel([ord(c) for c in "nothing like it"]), tokenizer, [episode])[0][0] == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=30), st.integers(2, 4))
def test_repeated_positions_flag_exactly_the_ngrams_seen_before(ids, n):
    flags = repeated_positions(ids, n)
    assert len(flags) == max(0, len(ids) - n + 1)
    for k, flag in enumerate(flags):
        end = k + n - 1
        gram = ids[end - n + 1:end + 1]
        earlier = any(ids[s:s + n] == gram for s in range(0, end - n + 1))
        assert flag == earlier


class FixedTokenizer:
    """A tokenizer whose chat template returns the user message's characters as token ids."""

    chat_template = "fixed"

    def apply_chat_template(self, messages, tools=None, add_generation_prompt=True, tokenize=True):
        return [int(c) for c in messages[-1]["content"]]


class FixedModel:
    """Logits that put probability 1/2 on token 0 and share the rest evenly over tokens 1-9."""

    def __call__(self, input_ids):
        import torch

        logits = torch.zeros(1, input_ids.shape[1], 10)
        logits[..., 0] = math.log(9.0)  # p(0) = 9 / 18 = 1/2, p(other) = 1/18
        return type("Out", (), {"logits": logits})()


def test_induction_nll_averages_the_log_probabilities_of_repeated_and_new_tokens():
    pytest.importorskip("torch")
    # Tokens 0 1 2 0 1 2 5 with n = 3: positions 2..6 end grams 012 120 201 012 125; only position 5 repeats.
    result = induction_nll(FixedModel(), FixedTokenizer(), [("system", "0120125")], n=3)
    assert (result.repeated_tokens, result.new_tokens) == (1, 4)
    assert result.repeated == pytest.approx(math.log(18))  # token 2
    new = [math.log(18), math.log(2), math.log(18), math.log(18)]  # tokens 2, 0, 1, 5
    assert result.new == pytest.approx(sum(new) / 4)
    with pytest.raises(DataError, match="repeated"):
        induction_nll(FixedModel(), FixedTokenizer(), [("system", "0123")], n=3)
    with pytest.raises(ConfigError, match="n must"):
        induction_nll(FixedModel(), FixedTokenizer(), [("system", "0123")], n=1)


def test_the_script_writes_copy_episodes_and_probes_a_model(records, tmp_path, tiny_lm_path, capsys):
    teacher = tmp_path / "teacher.jsonl"
    teacher.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "copy" / "trajectories.jsonl"
    copying.main(["data", "--trajectories", str(teacher), "--out", str(out), "--count", "7"])
    assert len(out.read_text().splitlines()) == 7
    cont = tmp_path / "continue.jsonl"
    copying.main(["data", "--task", "continue", "--trajectories", str(teacher), "--out", str(cont), "--count", "5",
                  "--cue-words", "2", "--min-words", "1", "--max-words", "3"])
    episodes = [json.loads(line) for line in cont.read_text().splitlines()]
    assert len(episodes) == 5 and {e["system"] for e in episodes} == {CONTINUE_SYSTEM}
    assert all(1 <= len(e["turns"][0]["response"].split()) <= 3 for e in episodes)
    capsys.readouterr()
    copying.main(["score", "--trajectories", str(teacher), "--models", tiny_lm_path, "--count", "2"])
    (line,) = capsys.readouterr().out.splitlines()
    row = json.loads(line)
    assert row["episodes"] == 2 and row["task"] == "continue"
    assert row["exact_lo"] <= row["exact"] <= row["exact_hi"] and 0 <= row["words_in_place"] <= 1
    copying.main(["probe", "--trajectories", str(teacher), "--models", tiny_lm_path, "--prompts", "2"])
    (line,) = capsys.readouterr().out.splitlines()
    row = json.loads(line)
    assert row["prompts"] == 2 and row["repeated_tokens"] > 0 and row["new_tokens"] > 0
    assert 0 < row["repeated"] < 50 and 0 < row["new"] < 50


def test_the_script_reports_bad_input_without_a_traceback(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"turns": [{"user": "no article"}]}) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        copying.main(["data", "--trajectories", str(empty), "--out", str(tmp_path / "x.jsonl")])
    assert "Article chunk" in str(exit_info.value.code)  # SystemExit(message): status 1, the message on stderr
