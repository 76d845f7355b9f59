"""EnvSpec: the one way evaluation, SFT, GRPO and the Ray rollout workers build envs from options."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from agents.training.envs import EnvSpec
from atommem_env.errors import ConfigError

FIXTURES = str(Path(__file__).resolve().parents[1] / "fixtures" / "data")
# The HotpotQA fixture has 3 usable dev records and 10 paragraphs: small single-question episodes.
SMALL_REAL = {"num_documents": 10, "questions_per_episode": "single", "chunk_tokens": 128, "prompt_style": "compact"}


@pytest.fixture(autouse=True)
def no_data_dir_from_the_environment(monkeypatch):
    monkeypatch.delenv("ATOMMEM_DATA_DIR", raising=False)


def test_a_synthetic_id_ignores_data_dir():
    spec = EnvSpec.from_flags("AtomMem-Synthetic-Tiny-v0", "{}", data_dir=FIXTURES)
    assert spec.options() == {}
    obs, _ = spec.make().reset(seed=0)  # a data_dir reaching the env would raise a ConfigError here
    assert obs["phase"] == 0


def test_a_real_id_gets_data_dir_and_its_options():
    spec = EnvSpec.from_flags("AtomMem-HotpotQA-v0", SMALL_REAL, data_dir=FIXTURES)
    assert spec.options() == {**SMALL_REAL, "data_dir": FIXTURES}
    env = spec.make()
    assert len(env.unwrapped.source) == 3 and env.unwrapped.config.chunk_tokens == 128


def test_a_data_dir_among_the_options_wins_over_the_flag(tmp_path):
    spec = EnvSpec.from_flags("AtomMem-HotpotQA-v0", {"data_dir": FIXTURES}, data_dir=str(tmp_path))
    assert spec.options()["data_dir"] == FIXTURES


def test_overrides_apply_to_one_env_only():
    spec = EnvSpec("AtomMem-Synthetic-Tiny-v0", {"top_k": 3})
    assert spec.make(top_k=2).unwrapped.config.top_k == 2 and spec.make().unwrapped.config.top_k == 3


@pytest.mark.parametrize("text, message", [("[1]", "must be a JSON object"), ("{top_k: 3}", "is not valid JSON")])
def test_bad_option_text_names_the_flag(text, message):
    with pytest.raises(ConfigError, match=f"--eval-env-kwargs {message}"):
        EnvSpec.from_flags("AtomMem-Synthetic-v0", text, flag="--eval-env-kwargs")


def test_a_spec_is_plain_data_that_travels_to_actors():
    spec = EnvSpec.from_flags("AtomMem-HotpotQA-v0", '{"top_k": 3}', data_dir=FIXTURES)
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_episode_count_is_the_size_of_the_envs_source():
    spec = EnvSpec.from_flags("AtomMem-HotpotQA-v0", SMALL_REAL, data_dir=FIXTURES)
    assert spec.episode_count() == len(spec.make().unwrapped.source) > 0


def test_episode_count_of_an_env_without_a_source_names_the_id():
    with pytest.raises(ConfigError, match="CartPole-v1 has no episode source"):
        EnvSpec("CartPole-v1").episode_count()
