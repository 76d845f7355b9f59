"""The small model of SmolLM2's architecture (agents/training/small_model.py, experiments/make_small_model.py):
its trained tokenizer keeps SmolLM2's special tokens and chat template, the folder loads and plays
episodes through the code paths any model takes, and bad shapes or folders are refused."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import gymnasium as gym  # noqa: E402

import atommem_env  # noqa: E402,F401
from agents import HeuristicMemoryPolicy  # noqa: E402
from agents.hf_policy import TransformersPolicy  # noqa: E402
from agents.models import load_causal_lm  # noqa: E402
from agents.training.rollout import rollout  # noqa: E402
from agents.training.small_model import (  # noqa: E402
    SPECIAL_TOKENS,
    SmallLlama,
    build_small_llama,
    train_tokenizer,
    trajectory_texts,
)
from atommem_env.errors import ConfigError  # noqa: E402
from experiments import make_small_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

SHAPE = SmallLlama(hidden_size=16, layers=1, heads=2, kv_heads=1, intermediate_size=32, max_positions=2048)


def make_env():
    return gym.make("AtomMem-Synthetic-Tiny-v0")


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    played = rollout(make_env, HeuristicMemoryPolicy(), seeds=range(6), indices=range(6))
    path = tmp_path_factory.mktemp("teacher") / "trajectories.jsonl"
    path.write_text("".join(json.dumps({"policy": "heuristic", **t.to_json()}) + "\n" for t in played))
    return path


@pytest.fixture(scope="module")
def tokenizer(teacher_file, tiny_lm_path):
    return train_tokenizer(trajectory_texts([teacher_file]), 400, template_source=tiny_lm_path)


def test_the_trained_tokenizer_has_smollm2s_special_tokens_and_the_given_template(tokenizer, tiny_lm_path):
    from transformers import AutoTokenizer

    assert len(tokenizer) == 400
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2]
    ids = (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert ids == (0, 1, 2, 2)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(tiny_lm_path).chat_template
    text = "<final_answer>\\boxed{Thesvaiwick}</final_answer>\nMemory 3: ü"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text  # byte-level: any text round-trips


def test_a_vocabulary_too_small_for_the_bytes_is_refused(teacher_file):
    with pytest.raises(ConfigError, match="at least 259"):
        train_tokenizer(trajectory_texts([teacher_file]), 100)


def test_the_folder_loads_and_plays_an_episode(tmp_path, tokenizer):
    counts = build_small_llama(tmp_path / "m", SHAPE, tokenizer, seed=3, about={"tokenizer": "test"})
    model, loaded = load_causal_lm(str(tmp_path / "m"), "cpu")
    assert counts == {"parameters": sum(p.numel() for p in model.parameters()), "embedding_parameters": 400 * 16}
    assert model.config.tie_word_embeddings and model.config.num_hidden_layers == 1
    assert (model.config.eos_token_id, model.config.pad_token_id, len(loaded)) == (2, 2, 400)
    saved = json.loads((tmp_path / "m" / "small_model.json").read_text())
    assert saved["shape"]["hidden_size"] == 16 and saved["seed"] == 3 and saved["tokenizer"] == "test"
    policy = TransformersPolicy.from_model(model, loaded, temperature=0.0, max_new_tokens=4, name="small")
    (played,) = rollout(make_env, policy, seeds=[0], indices=[0])
    assert played.turns and all(turn.response_ids for turn in played.turns)


def test_the_same_seed_builds_the_same_weights(tmp_path, tokenizer):
    for name in ("a", "b"):
        build_small_llama(tmp_path / name, SHAPE, tokenizer, seed=1)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("shape, message", [
    (SmallLlama(hidden_size=30, heads=4), "not a multiple of heads"),
    (SmallLlama(heads=4, kv_heads=3), "not a multiple of kv_heads"),
    (SmallLlama(layers=0), "layers 0: need at least 1"),
])
def test_bad_shapes_are_refused(tmp_path, tokenizer, shape, message):
    with pytest.raises(ConfigError, match=message):
        build_small_llama(tmp_path / "m", shape, tokenizer)


def test_a_folder_in_use_is_refused(tmp_path, tokenizer):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        build_small_llama(tmp_path / "m", SHAPE, tokenizer)


def test_the_script_trains_a_tokenizer_and_writes_the_model(tmp_path, teacher_file, tiny_lm_path, capsys):
    out = make_small_model.main(["--out-dir", str(tmp_path / "m"), "--tokenizer", tiny_lm_path, "--tokenizer-from",
                                 str(teacher_file), "--vocab-size", "300", "--hidden-size", "16", "--layers", "1",
                                 "--heads", "2", "--kv-heads", "1", "--intermediate-size", "32"])
    model, tokenizer = load_causal_lm(str(out), "cpu")
    assert len(tokenizer) == 300 and model.config.hidden_size == 16
    assert '"parameters"' in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not a multiple of heads"):
        make_small_model.main(["--out-dir", str(tmp_path / "n"), "--tokenizer", tiny_lm_path, "--tokenizer-from",
                               str(teacher_file), "--hidden-size", "30", "--heads", "4"])


def test_the_script_can_keep_a_given_tokenizer(tmp_path, tiny_lm_path):
    from transformers import AutoTokenizer

    out = make_small_model.main(["--out-dir", str(tmp_path / "m"), "--tokenizer", tiny_lm_path, "--hidden-size", "16",
                                 "--layers", "1", "--heads", "2", "--kv-heads", "1", "--intermediate-size", "32"])
    assert len(AutoTokenizer.from_pretrained(out)) == len(AutoTokenizer.from_pretrained(tiny_lm_path))
