"""SFT: samples from teacher trajectories, the seeded data order, and experiments/sft.py end to end
with a tiny model (resume after a crash gives the same weights as an uninterrupted run)."""

import copy
import csv
import json
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import gymnasium as gym  # noqa: E402

import atommem_env  # noqa: E402,F401
from agents import HeuristicMemoryPolicy  # noqa: E402
from agents.chat import chat_prompt_ids  # noqa: E402
from agents.training.batching import collate  # noqa: E402
from agents.training.learner import Learner, LearnerConfig  # noqa: E402
from agents.training.rollout import rollout  # noqa: E402
from agents.training.sft_data import (  # noqa: E402
    Cursor,
    batches,
    end_of_turn_ids,
    keep_successful,
    teacher_samples,
)
from atommem_env import parse_action  # noqa: E402
from atommem_env.errors import DataError  # noqa: E402
from atommem_env.tool_calls import render_tool_calls  # noqa: E402
from experiments import sft  # noqa: E402
from tests.support.tiny_lm import build_tiny_lm  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

SYNTHETIC = {"num_documents": 6, "chunk_tokens": 256}


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="module")
def tokenizer(tiny_lm):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_lm)


@pytest.fixture(scope="module")
def teacher():
    """Twelve heuristic episodes of a compact Synthetic setting; two of them are answered right."""
    make = lambda: gym.make("AtomMem-Synthetic-v0", **SYNTHETIC)  # noqa: E731
    return rollout(make, HeuristicMemoryPolicy(), seeds=range(12), indices=range(12))


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory, teacher):
    path = tmp_path_factory.mktemp("teacher") / "trajectories.jsonl"
    path.write_text("".join(json.dumps({"policy": "heuristic", **t.to_json()}) + "\n" for t in teacher))
    return path


def with_reward(trajectory, reward):
    return replace(trajectory, reward=reward)


# ---------------------------------------------------------------------------------------------------
# Samples


def test_only_episodes_with_enough_reward_are_kept(teacher, tokenizer):
    episodes = [with_reward(teacher[i], r) for i, r in enumerate((0.0, 0.49, 0.5, 1.0))]
    assert [t.reward for t in keep_successful(episodes, 0.5)] == [0.5, 1.0]
    samples, stats = teacher_samples(episodes, tokenizer, min_reward=0.5)
    turns = len(episodes[2].turns) + len(episodes[3].turns)
    counts = (stats.episodes, stats.kept_episodes, stats.turns, stats.samples, len(samples))
    assert counts == (4, 2, turns, turns, turns)


def test_a_text_turn_becomes_the_chat_prompt_and_the_response_with_its_end_of_turn_token(teacher, tokenizer):
    episode = with_reward(teacher[0], 1.0)
    samples, _ = teacher_samples([episode], tokenizer)
    turn, sample = episode.turns[0], samples[0]
    expected_prompt, _ = chat_prompt_ids(tokenizer, {"system": episode.system, "user": turn.user}, 16_384)
    assert list(sample.prompt_ids) == expected_prompt
    rendered = tokenizer.decode(sample.prompt_ids)
    assert rendered.startswith("system :") and rendered.endswith("assistant :")  # the template, ready to answer
    text_ids = tokenizer(turn.response, add_special_tokens=False)["input_ids"]
    assert list(sample.response_ids) == text_ids + [tokenizer.eos_token_id]
    batch = collate([sample])
    mask = batch.response_mask[0]
    assert mask[: len(sample.prompt_ids)].sum() == 0 and mask[len(sample.prompt_ids):].sum() == len(sample.response_ids)


def test_a_tool_calling_turn_is_prompted_with_its_tools_and_refused_when_its_text_lost_the_calls(tokenizer):
    make = lambda: gym.make("AtomMem-Synthetic-v0", action_format="tools", **SYNTHETIC)  # noqa: E731
    (episode,) = rollout(make, HeuristicMemoryPolicy(), seeds=[0], indices=[0])
    episode = with_reward(episode, 1.0)
    samples, _ = teacher_samples([episode], tokenizer)
    turn = episode.turns[0]
    observation = {"system": episode.system, "user": turn.user, "tools": episode.tools}
    assert episode.tools and turn.tool_calls and "<tool_call>" in turn.response  # the calls' Hermes text
    assert list(samples[0].prompt_ids) == chat_prompt_ids(tokenizer, observation, 16_384)[0]
    served = copy.deepcopy(episode)
    served.turns[0].response = ""  # a server's content: its tool parser took the calls out
    with pytest.raises(DataError, match="return_token_ids"):
        teacher_samples([served], tokenizer)


def test_a_tool_calling_teachers_targets_are_its_tag_actions_converted_to_tool_calls(teacher, tokenizer):
    """The tools SFT of README's tool-calls table: the heuristic teacher played with action_format="tools" on
    the tags teacher's episodes gives, turn by turn, the tags actions as Hermes <tool_call> text."""
    make = lambda: gym.make("AtomMem-Synthetic-v0", action_format="tools", **SYNTHETIC)  # noqa: E731
    calling = rollout(make, HeuristicMemoryPolicy(), seeds=range(12), indices=range(12))
    assert [t.reward for t in calling] == [t.reward for t in teacher]
    samples, stats = teacher_samples([with_reward(t, 1.0) for t in calling], tokenizer)
    turns = [turn for tags in teacher for turn in tags.turns]
    assert stats.samples == len(turns) == len(samples)
    end = end_of_turn_ids(tokenizer)
    for tags_turn, sample in zip(turns, samples, strict=True):
        converted = render_tool_calls(parse_action(tags_turn.response).ops)
        assert converted.startswith("<tool_call>")
        assert list(sample.response_ids) == tokenizer(converted, add_special_tokens=False)["input_ids"] + end


def test_the_end_of_turn_token_comes_from_the_chat_template(tokenizer):
    assert end_of_turn_ids(tokenizer) == [tokenizer.eos_token_id]  # the tiny template: "... <eos>"
    chatml = copy.deepcopy(tokenizer)
    chatml.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    chatml.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    assert end_of_turn_ids(chatml) == [chatml.convert_tokens_to_ids("<|im_end|>")] != [chatml.eos_token_id]
    chatml.chat_template = "{{ raise_exception('roles must alternate user/assistant/user') }}"
    assert end_of_turn_ids(chatml) == [chatml.eos_token_id]  # a template that refuses the probe: the eos token
    chatml.chat_template = None
    assert end_of_turn_ids(chatml) == [chatml.eos_token_id]  # no template: the eos token


def test_smollm2_turns_end_with_im_end():
    from agents.models import cache_root

    folder = cache_root() / "models" / "smollm2-135m-instruct"
    if not (folder / "tokenizer.json").is_file():
        pytest.skip("SmolLM2 is not converted yet (agents.models.resolve_model('smollm2') does it once)")
    from transformers import AutoTokenizer

    smollm2 = AutoTokenizer.from_pretrained(folder)
    assert end_of_turn_ids(smollm2) == [smollm2.convert_tokens_to_ids("<|im_end|>")]


def test_turns_with_token_ids_are_used_unchanged(teacher, tokenizer):
    episode = with_reward(teacher[0], 1.0)
    episode.turns = [replace(episode.turns[0], prompt_ids=[5, 6, 7], response_ids=[8, 9, 2])]
    samples, stats = teacher_samples([episode], tokenizer)
    assert (samples[0].prompt_ids, samples[0].response_ids, stats.from_token_ids) == ((5, 6, 7), (8, 9, 2), 1)
    episode.turns = [replace(episode.turns[0], prompt_ids=[5, 6, 7], response_ids=[8, 9, 5000])]
    with pytest.raises(DataError, match="token id 5000.*another tokenizer"):
        teacher_samples([episode], tokenizer)


def test_long_turns_are_skipped_and_long_prompts_cut_as_the_policy_would(teacher, tokenizer):
    episode = with_reward(teacher[0], 1.0)
    full, _ = teacher_samples([episode], tokenizer)
    limit = max(len(s) for s in full) - 1
    _, stats = teacher_samples([episode], tokenizer, max_seq_tokens=limit)
    assert stats.too_long == sum(len(s) > limit for s in full) >= 1
    cut, stats = teacher_samples([episode], tokenizer, max_prompt_tokens=64)
    assert stats.cut_prompts == len(episode.turns) and all(len(s.prompt_ids) == 64 for s in cut)


def test_one_sft_step_on_teacher_samples_changes_the_weights_and_lowers_the_loss(teacher, tiny_lm, tokenizer):
    from agents.models import load_causal_lm

    samples, _ = teacher_samples([with_reward(teacher[0], 1.0)], tokenizer)
    model, _ = load_causal_lm(str(tiny_lm), device="cpu")
    before = [p.detach().clone() for p in model.parameters()]
    learner = Learner(model, LearnerConfig(lr=1e-2, warmup_steps=0, kl_coef=0.0, pad_token_id=tokenizer.pad_token_id))
    first = learner.sft_step(samples)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert learner.sft_step(samples)["loss"] < first["loss"]


# ---------------------------------------------------------------------------------------------------
# Data order


def test_each_epoch_visits_every_sample_once_in_its_own_seeded_order():
    steps = list(batches(10, 4, epochs=2, seed=3))
    assert [len(indices) for indices, _ in steps] == [4, 4, 2, 4, 4, 2]
    first, second = [sum((i for i, _ in steps[k:k + 3]), []) for k in (0, 3)]
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    assert [c for _, c in steps][:3] == [Cursor(0, 4), Cursor(0, 8), Cursor(1, 0)]
    assert list(batches(10, 4, epochs=2, seed=3)) == steps
    assert list(batches(10, 4, epochs=2, seed=3, start=Cursor(0, 8))) == steps[2:]  # a resume continues exactly


# ---------------------------------------------------------------------------------------------------
# The script


def run_args(teacher_file, tiny_lm, out_dir, *extra):
    return ["--trajectories", str(teacher_file), "--model", str(tiny_lm), "--out-dir", str(out_dir),
            "--batch-size", "2", "--epochs", "2", "--lr", "1e-3", "--warmup-steps", "3", "--save-every", "2",
            "--logger", "none", *extra]


def final_weights(run_dir):
    from safetensors.torch import load_file

    return load_file(run_dir / "final" / "model.safetensors")


def metric_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("recipe", [(), ("--lr-schedule", "cosine", "--prompt-loss-weight", "0.5")],
                         ids=["constant", "cosine-with-prompt-loss"])
def test_a_run_interrupted_by_a_crash_resumes_to_the_same_final_weights(teacher_file, tiny_lm, tmp_path, monkeypatch,
                                                                         capsys, recipe):
    # one checkpoint at step 3, then a crash in step 6: steps 4-5 are logged twice
    every3 = ("--save-every", "3", *recipe)
    whole = sft.main(run_args(teacher_file, tiny_lm, tmp_path / "whole", *every3))
    assert [row["step"] for row in metric_rows(tmp_path / "whole")] == ["1", "2", "3", "4", "5", "6"]

    real_step, calls = Learner.sft_step, []

    def crash_in_step_six(self, samples):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt("power cut")
        return real_step(self, samples)

    monkeypatch.setattr(Learner, "sft_step", crash_in_step_six)
    with pytest.raises(SystemExit) as exit_:  # Ctrl-C: status 130 and the command that continues the run
        sft.main(run_args(teacher_file, tiny_lm, tmp_path / "cut", *every3))
    monkeypatch.undo()
    assert exit_.value.code == 130
    assert capsys.readouterr().err.endswith(" ".join(["--out-dir", str(tmp_path / "cut"), "--resume\n"]))
    assert not (tmp_path / "cut" / "final").exists()
    assert len(metric_rows(tmp_path / "cut")) == 5

    resumed = sft.main(run_args(teacher_file, tiny_lm, tmp_path / "cut", *every3, "--resume"))
    expected, actual = final_weights(tmp_path / "whole"), final_weights(tmp_path / "cut")
    assert expected.keys() == actual.keys() and all(torch.equal(expected[k], actual[k]) for k in expected)
    untimed = lambda rows: [{k: v for k, v in row.items() if k != "train/tokens_per_s"} for row in rows]  # noqa: E731
    # One row per step (the crashed run's steps 4-5 were dropped and retrained), the same values as the whole run.
    assert untimed(metric_rows(tmp_path / "cut")) == untimed(metric_rows(tmp_path / "whole"))
    assert resumed == tmp_path / "cut" / "final" and whole == tmp_path / "whole" / "final"


def test_a_cosine_schedule_ends_at_a_tenth_of_the_rate_and_a_prompt_loss_is_logged(teacher_file, tiny_lm, tmp_path):
    sft.main(run_args(teacher_file, tiny_lm, tmp_path / "run", "--lr-schedule", "cosine", "--prompt-loss-weight", "1"))
    rows = metric_rows(tmp_path / "run")
    lrs = [float(row["train/lr"]) for row in rows]
    assert lrs[2] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4)  # warm-up 3 steps, then the cosine
    assert all(a >= b for a, b in zip(lrs[2:-1], lrs[3:], strict=True))
    assert all(float(row["train/prompt_loss"]) > 0 for row in rows)


def test_the_final_model_plays_as_a_policy_and_is_evaluated(teacher_file, tiny_lm, tmp_path):
    pytest.importorskip("peft", reason="peft is not installed (pip install 'atommem[train]')")
    from agents.hf_policy import TransformersPolicy

    out = tmp_path / "run"
    final = sft.main(run_args(
        teacher_file, tiny_lm, out, "--max-steps", "1", "--lora-r", "4", "--eval-env-ids", "AtomMem-Synthetic-v0",
        "--eval-episodes", "1", "--eval-env-kwargs", json.dumps(SYNTHETIC), "--eval-policy-kwargs",
        '{"max_new_tokens": 4}',
    ))
    assert not list(final.glob("adapter_*"))  # LoRA merged: a plain model folder
    policy = TransformersPolicy(str(final), temperature=0, max_new_tokens=4, device="cpu")
    obs, _ = gym.make("AtomMem-Synthetic-v0", **SYNTHETIC).reset(seed=0)
    assert len(policy.act([obs])[0].response_ids) <= 4
    [row] = metric_rows(out)
    assert row["step"] == "1" and float(row["eval/em"]) == 0.0 and "eval/AtomMem-Synthetic-v0/em" in row
    assert (out / "eval" / "trajectories.jsonl").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["samples"]["kept_episodes"] == 2 and config["max_steps"] == 1


def test_a_new_run_refuses_a_used_folder_and_a_resume_refuses_other_data(teacher_file, tiny_lm, tmp_path):
    out = tmp_path / "run"
    sft.main(run_args(teacher_file, tiny_lm, out, "--max-steps", "1"))
    with pytest.raises(SystemExit, match="already holds a run; pass --resume"):
        sft.main(run_args(teacher_file, tiny_lm, out))
    with pytest.raises(SystemExit, match=r"the data differs.*min_reward: saved 0.5, now 0.0"):
        sft.main(run_args(teacher_file, tiny_lm, out, "--resume", "--min-reward", "0"))
    with pytest.raises(SystemExit, match="holds no checkpoint; run without --resume"):
        sft.main(run_args(teacher_file, tiny_lm, tmp_path / "empty", "--resume"))


def test_invalid_arguments_are_all_reported_with_their_fix(teacher_file):
    with pytest.raises(SystemExit) as error:
        sft.parse_args(["--trajectories", str(teacher_file), "missing.jsonl", "--epochs", "0", "--min-reward", "2",
                        "--max-seq-tokens", "100", "--max-prompt-tokens", "200", "--eval-env-ids", "AtomMem-Nope-v0",
                        "--eval-env-kwargs", "[1]", "--lr-schedule", "linear", "--prompt-loss-weight", "-1",
                        "--out-dir", "x"])
    message = str(error.value)
    for part in ("missing.jsonl: no such file", "--epochs 0 must be at least 1", "--min-reward 2.0 must be in [0, 1]",
                 "--max-seq-tokens 100 must exceed --max-prompt-tokens 200", "AtomMem-Nope-v0: not a registered id",
                 "--eval-env-kwargs must be a JSON object", "--lr-schedule 'linear' is unknown",
                 "--prompt-loss-weight -1.0 must be >= 0"):
        assert part in message
    with pytest.raises(SystemExit, match="--trajectories is required"):
        sft.parse_args(["--out-dir", "x"])
    with pytest.raises(SystemExit, match="name its folder with --out-dir"):
        sft.parse_args(["--trajectories", str(teacher_file), "--resume"])


def test_a_preset_fills_the_flags_not_given(teacher_file):
    args = sft.parse_args(["--trajectories", str(teacher_file), "--preset", "cpu-small", "--batch-size", "8",
                           "--out-dir", "x"])
    assert (args.batch_size, args.max_seq_tokens, args.epochs) == (8, 4096, 3)  # flag, preset, default
    small = sft.parse_args(["--trajectories", str(teacher_file), "--preset", "cpu-small-model", "--out-dir", "x"])
    assert (small.batch_size, small.lr, small.save_every) == (16, 1e-3, 25)
    paper = sft.parse_args(["--trajectories", str(teacher_file), "--preset", "paper", "--out-dir", "x"])
    assert (paper.epochs, paper.min_reward, paper.lr) == (3, 0.5, 1e-5)  # SPEC §8, and the chosen SFT lr
