"""ControllerEnv, its macro-actions and features, and the static workflows (no Ray here)."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from agents import text as T
from agents.controller.env import FEATURES, ControllerEnv, action_mask, make_controller_env
from agents.controller.evaluation import (
    behaviour,
    eval_env_config,
    macro_rates,
    play,
    play_config,
    random_policy,
)
from agents.controller.macros import MACROS, MacroSettings, applicable, render_macro
from agents.controller.workflows import WORKFLOWS
from agents.scripted import bridge_entity
from agents.training.metrics import summarize
from atommem_env import parse_action
from atommem_env.errors import ConfigError
from tests.conftest import shared_data_dir

M = MACROS.index


@pytest.fixture
def env() -> ControllerEnv:
    return make_controller_env({"env_id": "AtomMem-Synthetic-v0"})


def test_passes_gymnasium_check_env_without_warnings(env, make_env):
    for candidate in (env, ControllerEnv(make_env())):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(candidate, skip_render_check=True)
        assert [str(w.message) for w in caught] == []


def test_spaces_and_features(env):
    assert env.action_space == gym.spaces.Discrete(len(MACROS))
    features, info = env.reset(seed=3, options={"index": 5})
    assert features.shape == (len(FEATURES),) and features.dtype == np.float32
    assert env.observation_space.contains(features)
    again, _ = env.reset(seed=3, options={"index": 5})
    np.testing.assert_array_equal(features, again)
    named = dict(zip(FEATURES, features, strict=True))
    assert named["phase"] == 0 and named["chunk_progress"] == 0 and named["store_size"] == 0


def test_reading_macros_write_as_described(env):
    env.reset(seed=0, options={"index": 2})
    obs = env.text_observation
    names = [e for q in obs["questions"] for e in T.entities(q)]
    _, _, _, _, info = env.step(M("store_chunk"))
    created = [op for op in info["ops"] if op["op"] == "add_memory"]
    assert len(created) == len(T.documents(obs["chunk"])) and info["advanced"]
    assert info["macro"] == "store_chunk" and info["action"].count("<add_memory>") == len(created)
    _, _, _, _, info = env.step(M("read_question"))
    assert env.text_observation["query"] == " ".join(T.keywords(" ".join(obs["questions"])))
    assert not info["advanced"] and info["op_counts"]["read"] == 1
    shown = len(env.text_observation["memories"])
    _, _, _, _, info = env.step(M("delete_worst"))
    assert info["op_counts"]["delete"] == 1 and info["memory_size"] == len(created) - 1 and shown > 0
    before = env.text_observation
    _, _, _, _, info = env.step(M("store_matches"))
    bridges = [b for b in env.text_observation["scratchpad"].removeprefix("Bridge entities: ").split("; ") if b]
    texts = [env.inner.unwrapped.memory.get(i) for i in info["created_ids"]]
    assert texts and info["advanced"]
    for text in texts:
        assert text.startswith("Section") or T.mentions(text, names + bridges), text
    assert all(text not in before["memories"] for text in texts)


def test_update_best_keeps_one_running_note(env):
    env.reset(seed=1, options={"index": 4})
    sizes = []
    while env.text_observation["phase"] == 0:
        _, _, _, _, info = env.step(M("update_best"))
        sizes.append(info["memory_size"])
    assert sizes == [1] * len(sizes) and len(sizes) >= 3


def test_macros_outside_their_phase_send_nothing(env):
    env.reset(seed=0, options={"index": 0})
    _, _, _, _, info = env.step(M("answer"))
    assert info["action"] == "" and info["errors"][0]["code"] == "no_action" and not info["advanced"]
    while env.text_observation["phase"] == 0:
        env.step(M("skip"))
    for macro in ("skip", "store_matches", "store_chunk", "update_best", "delete_worst"):
        assert render_macro(macro, env.text_observation, env.inner.unwrapped.tokenizer, env.settings) == ""


def test_answer_phase_reads_then_answers(env):
    env.reset(seed=0, options={"index": 0})
    while env.text_observation["phase"] == 0:
        env.step(M("store_matches"))
    obs = env.text_observation
    hop = bridge_entity(obs["question"], obs["memories"])
    keywords = " ".join(T.keywords(obs["question"]))
    _, _, _, _, info = env.step(M("read_bridge"))  # the first hop the memories name, with the keywords
    assert info["op_counts"]["read"] == 1
    assert env.text_observation["query"] == (f"{hop} {keywords}" if hop else keywords)
    _, reward, terminated, _, info = env.step(M("answer"))
    assert terminated and info["op_counts"]["answer"] == 1 and reward == info["reward"]


def test_rendered_macros_parse_cleanly_and_the_mask_says_which_render():
    env = make_controller_env({"env_id": "AtomMem-Synthetic-v0", "env_kwargs": {"questions_per_episode": 3}})
    rng = np.random.default_rng(0)
    for episode in range(6):
        features, _ = env.reset(seed=episode)
        done = False
        while not done:
            mask = env.action_mask()
            np.testing.assert_array_equal(mask, action_mask(features))
            for macro, allowed in zip(MACROS, mask, strict=True):
                text = render_macro(macro, env.text_observation, env.inner.unwrapped.tokenizer, env.settings)
                assert (text != "") == allowed, macro
                assert text == "" or parse_action(text).errors == ()
            features, _, terminated, truncated, info = env.step(int(rng.integers(len(MACROS))))
            if mask[MACROS.index(info["macro"])]:  # applicable: never refused (a 4th read while
                # answering is allowed: by the env's rule it skips the question)
                assert {e["code"] for e in info["errors"]} <= {"too_many_reads"}, info
                assert info["phase"] != "reading" or info["errors"] == []
            done = terminated or truncated


def test_mask_stops_reads_at_the_consecutive_read_limit(env):
    env.reset(seed=0, options={"index": 1})
    for _ in range(3):
        assert env.action_mask()[M("read_question")]
        env.step(M("read_question"))
    assert not env.action_mask()[M("read_question")] and not env.action_mask()[M("read_bridge")]
    assert not env.action_mask()[M("delete_worst")]  # nothing stored yet, so nothing shown


def test_bad_inputs_raise_clear_errors(env):
    with pytest.raises(ConfigError, match="reset"):
        _ = env.text_observation
    with pytest.raises(ConfigError, match="MemAgent"):
        ControllerEnv(gym.make("AtomMem-MemAgent-Synthetic-v0"))
    with pytest.raises(ConfigError, match="MemAgent"):  # before the macro settings read the env's limits
        make_controller_env({"env_id": "AtomMem-MemAgent-Synthetic-v0"})
    with pytest.raises(ConfigError, match="env_kwarg"):
        make_controller_env({"env_kwarg": {}})
    with pytest.raises(ConfigError, match="AtomMem id"):
        make_controller_env({"env_id": "CartPole-v1"})
    with pytest.raises(ConfigError, match="dict"):
        make_controller_env({"env_kwargs": "top_k=3"})
    with pytest.raises(ConfigError, match="max_entries"):
        MacroSettings(max_entries=0)
    with pytest.raises(ConfigError, match="Unknown macro"):
        render_macro("store_all", {}, None, MacroSettings())
    with pytest.raises(ConfigError, match="Unknown macro"):
        applicable("store_all", 0, 0, True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="macro index"):
        env.step(len(MACROS))


def test_pickles_mid_episode(env):
    env.reset(seed=2, options={"index": 1})
    env.step(M("store_matches"))
    clone = pickle.loads(pickle.dumps(env))
    for action in (M("store_chunk"), M("read_question"), M("skip")):
        a, b = env.step(action), clone.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]


def test_workflows_are_the_fixed_sequences_they_claim():
    config = {"env_id": "AtomMem-Synthetic-v0"}
    runs = {name: play_config(config, policy, episodes=8) for name, policy in WORKFLOWS.items()}
    first = runs["store-then-answer"][0].result["macros"]
    assert first[-3:] == ["read_question", "read_bridge", "answer"]
    assert set(first[:-3]) == {"store_matches"}
    assert summarize(runs["never-read"])["read_per_turn"] == 0
    assert {t.turns[-1].memory_size for t in runs["memagent-overwrite"]} == {1}
    assert summarize(runs["always-store"])["store_size"] > 2 * summarize(runs["store-then-answer"])["store_size"]
    again = play_config(config, WORKFLOWS["store-then-answer"], episodes=8)
    assert [t.to_json() for t in again] == [t.to_json() for t in runs["store-then-answer"]]


def test_bridge_then_store_follows_its_rules():
    trajectories = play_config({"env_id": "AtomMem-Synthetic-v0"}, WORKFLOWS["bridge-then-store"], episodes=12)
    reads = {"read_question", "read_bridge"}
    for t in trajectories:
        macros, situations = t.result["macros"], t.result["situations"]
        assert not any(turn.errors for turn in t.turns)
        assert macros[0] == "read_question" and macros[-1] == "answer"  # the query starts unset
        reading = [m for m, s in zip(macros, situations, strict=True) if s.startswith("reading")]
        assert not any(a in reads and b in reads for a, b in zip(reading, reading[1:], strict=False))
        answering = macros[len(reading):]
        assert set(answering[:-1]) <= {"read_bridge"} and len(answering) <= 4
    tally = behaviour(trajectories)
    assert {r["macro"] for r in tally if r["situation"].startswith("reading: matches")} <= reads | {"store_matches"}
    assert {r["macro"] for r in tally if r["situation"].startswith("reading: no matches")} <= reads | {
        "store_chunk", "skip"}
    assert {r["macro"] for r in tally} >= {"skip", "store_chunk", "store_matches", "read_bridge"}
    for situation in {r["situation"] for r in tally}:
        assert sum(r["share"] for r in tally if r["situation"] == situation) == pytest.approx(1.0)


def test_play_records_trajectories_that_summarize(env):
    trajectories = play(env, random_policy(0), seeds=[0, 1, 2], indices=[5, 6, 7], env_id="x")
    assert [t.index for t in trajectories] == [5, 6, 7]
    assert all(len(t.turns) == len(t.result["macros"]) for t in trajectories)
    for traj in trajectories:
        # random picks applicable macros: at worst a 4th read while answering skips the question
        assert all({e["code"] for e in t.errors} <= {"too_many_reads"} for t in traj.turns)
    rates = macro_rates(trajectories)
    assert set(rates) == {f"macro/{m}" for m in MACROS} and sum(rates.values()) == pytest.approx(1.0)
    assert summarize(trajectories)["episodes"] == 3
    with pytest.raises(ValueError, match="one seed per episode"):
        play(env, random_policy(0), seeds=[0], indices=[1, 2])


def test_held_out_config_uses_the_next_synthetic_family():
    train = {"env_id": "AtomMem-Synthetic-v0", "env_kwargs": {"seed_salt": 4}}
    assert eval_env_config(train)["env_kwargs"]["seed_salt"] == 5 and train["env_kwargs"]["seed_salt"] == 4



def test_held_out_config_of_a_real_benchmark_is_its_dev_split():
    train = {"env_id": "AtomMem-HotpotQA-200-v0", "env_kwargs": {"data_dir": "x", "split": "train", "top_k": 3}}
    assert eval_env_config(train) == {"env_id": "AtomMem-HotpotQA-200-v0",
                                      "env_kwargs": {"data_dir": "x", "split": "dev", "top_k": 3}}
    assert train["env_kwargs"]["split"] == "train"
    dev = {"env_id": "AtomMem-HotpotQA-200-v0", "env_kwargs": {"data_dir": "x"}}
    assert eval_env_config(dev)["env_kwargs"] == {"data_dir": "x", "split": "dev"}
    with pytest.raises(ConfigError, match="pass data_dir"):
        eval_env_config({"env_id": "AtomMem-HotpotQA-v0", "env_kwargs": {"data_files": "t.json", "split": "train"}})


def test_real_training_and_held_out_episodes_share_no_question():
    data = shared_data_dir()
    if data is None:
        pytest.skip("no ../shared/data (or $ATOMMEM_SHARED_DATA): the HotpotQA files are not here")
    train = {"env_id": "AtomMem-HotpotQA-v0",
             "env_kwargs": {"data_dir": str(data), "split": "train", "num_documents": 100}}
    sources = [make_controller_env(c).inner.unwrapped.source for c in (train, eval_env_config(train))]
    assert [s.split for s in sources] == ["train", "dev"]
    questions = [{q.question for q in s.corpus.samples} for s in sources]
    assert questions[0] and questions[1] and not questions[0] & questions[1]


def test_store_chunk_fits_the_response_budget(make_env):
    env = ControllerEnv(make_env(chunk_tokens=200, response_tokens=250))
    env.reset(seed=0, options={"index": 2})
    documents = T.documents(env.text_observation["chunk"])
    tokenizer = env.inner.unwrapped.tokenizer
    fitted = render_macro("store_chunk", env.text_observation, tokenizer, env.settings)
    whole = render_macro("store_chunk", env.text_observation, tokenizer, MacroSettings(response_tokens=10**6))
    assert tokenizer.count(fitted) <= 250 < tokenizer.count(whole)
    _, _, _, _, info = env.step(M("store_chunk"))
    assert info["errors"] == [] and len(info["created_ids"]) == len(documents)


def test_read_bridge_without_a_first_hop_reads_the_question_keywords(env):
    env.reset(seed=0, options={"index": 3})
    obs = env.text_observation
    env.step(M("read_bridge"))
    assert env.text_observation["query"] == " ".join(T.keywords(" ".join(obs["questions"])))
