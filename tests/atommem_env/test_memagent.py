"""The MemAgent baseline protocol (SPEC §9): MemAgentEnv on the toy source, its ids, and the harness."""

import json
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import atommem_env
from agents import BASELINES, HeuristicMemoryPolicy, NoMemoryPolicy
from agents.training.metrics import OP_RATE_KEYS, summarize
from agents.training.rollout import rollout
from atommem_env import prompts
from atommem_env.errors import AtomMemError, ConfigError
from atommem_env.memagent import MemAgentEnv
from atommem_env.observation import Phase, Progress
from experiments import evaluate
from tests.conftest import FACTS, ToySource, shared_data_dir

MEMAGENT_SYNTHETIC = "AtomMem-MemAgent-Synthetic-v0"
GOLDS = [answer for _, answer, _ in FACTS]


def make_toy(**kwargs) -> MemAgentEnv:
    kwargs.setdefault("chunk_tokens", 60)
    kwargs.setdefault("chunk_overlap", 5)
    return MemAgentEnv(ToySource(), **kwargs)


def read_through(env, response="notes"):
    """Step every reading turn with the same response; returns the first answering observation."""
    obs, info = env.reset(seed=0, options={"index": 2})  # the three-question toy episode
    for _ in range(info["num_chunks"]):
        obs, reward, terminated, truncated, info = env.step(response)
        assert (reward, terminated, truncated) == (0.0, False, False)
    return obs, info


def boxed(answer: str) -> str:
    return f"The answer is \\boxed{{{answer}}}."


# ------------------------------------------------------------------------------------ gymnasium
def test_check_env_passes_without_warnings():
    env = gym.make(MEMAGENT_SYNTHETIC)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


def test_observation_has_memoryqaenv_keys_and_a_lone_user_message():
    env = make_toy()
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space and set(obs) == set(env.observation_space.spaces)
    assert obs["system"] == "" and obs["query"] == "" and obs["memories"] == () and obs["feedback"] == ""
    assert atommem_env.as_messages(obs) == [{"role": "user", "content": obs["user"]}]
    assert obs["user"].startswith("You are presented with a problem, a section of an article")
    assert obs["user"].endswith("Updated memory:\n")
    assert make_toy(render_mode="ansi").render() is None  # nothing to show before reset
    env = make_toy(render_mode="ansi")
    obs, _ = env.reset(seed=0)
    assert env.render() == obs["user"]


# ------------------------------------------------------------------------------------- reading
def test_first_prompt_shows_the_references_empty_memory_text():
    env = make_toy()
    obs, _ = env.reset(seed=0)
    assert f"<memory>\n{prompts.NO_MEMORY}\n</memory>" in obs["user"] and obs["scratchpad"] == ""


def test_each_reading_response_overwrites_the_whole_memory():
    env = make_toy()
    env.reset(seed=0)
    obs, *_ = env.step("Zorblax was born in Marrowfield.")
    assert obs["scratchpad"] == "Zorblax was born in Marrowfield."
    assert "<memory>\nZorblax was born in Marrowfield.\n</memory>" in obs["user"]
    obs, *_ = env.step("Only this now.")
    assert obs["scratchpad"] == "Only this now." and "Marrowfield." not in obs["user"].split("<section>")[0]
    obs, *_ = env.step("   ")  # an empty memory is shown as no memory, as before the first chunk
    assert f"<memory>\n{prompts.NO_MEMORY}\n</memory>" in obs["user"]


def test_memory_is_cut_to_memory_tokens_with_the_env_tokenizer():
    env = make_toy(memory_tokens=5)
    env.reset(seed=0)
    obs, _, _, _, info = env.step("one two three four five six seven eight")
    assert obs["scratchpad"] == "one two three four five"
    assert info["memory_truncated"] and info["scratchpad_tokens"] == 5 == env.tokenizer.count(obs["scratchpad"])
    _, _, _, _, info = env.step("short")
    assert not info["memory_truncated"] and info["scratchpad_tokens"] == 1


def test_default_memory_budget_is_memagents_1024_tokens():
    env = make_toy()
    env.reset(seed=0)
    obs, _, _, _, info = env.step("word " * 2000)
    assert env.config.memory_tokens == 1024 and info["scratchpad_tokens"] == 1024 and info["memory_truncated"]


@pytest.mark.parametrize("response", ["", "no tags", "<add_memory>x</add_memory>", "<update_query>q</update_query>"])
def test_chunk_advances_every_turn_whatever_the_response(response):
    env = make_toy()
    obs, info = env.reset(seed=0)
    chunks = env._chunks
    assert obs["chunk"] == chunks[0] and f"<section>\n{chunks[0]}\n</section>" in obs["user"]
    for turn in range(1, len(chunks)):
        obs, _, _, _, info = env.step(response)
        assert info["advanced"] and info["chunk_index"] == turn and obs["chunk"] == chunks[turn]
        assert info["ops"] == [] and info["errors"] == []


def test_reading_prompt_lists_every_question_of_the_episode_one_per_line():
    env = make_toy()
    obs, _ = env.reset(seed=0, options={"index": 2})
    questions = "\n".join(q for q, _, _ in FACTS)
    assert f"<problem> \n{questions}\n</problem>" in obs["user"] and obs["questions"] == tuple(q for q, _, _ in FACTS)


# ----------------------------------------------------------------------------------- answering
def test_answer_turns_show_one_question_and_the_final_memory():
    env = make_toy()
    obs, _ = read_through(env, response="final notes")
    assert obs["phase"] == 1 and obs["chunk"] == "" and obs["question"] == FACTS[0][0]
    assert f"<problem> \n{FACTS[0][0]}\n</problem>" in obs["user"] and FACTS[1][0] not in obs["user"]
    assert "<memory>\nfinal notes\n</memory>" in obs["user"]
    assert "put the answer in \\boxed{}" in obs["user"] and obs["user"].endswith("Your answer:\n")


def test_each_answer_is_scored_against_its_own_questions_gold():
    env = make_toy()
    read_through(env)
    # Golds in reverse order: each matches a gold of the group, but only the middle one its own.
    for answer in reversed(GOLDS):
        obs, reward, terminated, truncated, info = env.step(boxed(answer))
    assert terminated and not truncated and info["em"] == [0.0, 1.0, 0.0] and reward == pytest.approx(1 / 3)
    assert info["golds"] == GOLDS and info["answers"] == list(reversed(GOLDS))


def test_last_box_is_the_answer_and_plain_text_counts_without_one():
    env = make_toy()
    read_through(env)
    env.step("\\boxed{Nowhere} on second thought \\boxed{Marrowfield}")
    env.step("  Tessaline Works  ")
    _, reward, terminated, _, info = env.step("no idea")
    assert info["answers"] == ["Marrowfield", "Tessaline Works", "no idea"]
    assert terminated and reward == pytest.approx(2 / 3) and info["em"] == [1.0, 1.0, 0.0]
    expected = {"answers", "golds", "aliases", "skipped", "em", "f1", "substring_em", "reward"}
    assert expected <= set(info) and info["skipped"] == [False] * 3 and info["reward"] == reward


def test_answers_are_not_memory_writes():
    env = make_toy()
    obs, _ = read_through(env, response="kept")
    obs, *_ = env.step(boxed("x"))
    assert obs["scratchpad"] == "kept" and "<memory>\nkept\n</memory>" in obs["user"]


# ---------------------------------------------------------------------------------- the episode
class GoldLineOracle:
    """Keeps in memory every chunk line that holds a gold answer; answers only from its memory.

    It knows the golds, but it must carry them through every overwrite to the answer turns, and
    box them for the right question in order: a memory, ordering or scoring bug makes it fail.
    """

    def __init__(self, golds):
        self.golds = golds

    def act(self, obs) -> str:
        if obs["phase"] == Phase.READING:
            lines = [line for line in obs["chunk"].splitlines() if any(g in line for g in self.golds)]
            return "\n".join(filter(None, [obs["scratchpad"], *lines]))
        gold = self.golds[int(obs["progress"][Progress.QUESTION])]
        return boxed(gold) if gold in obs["scratchpad"] else boxed("don't know")


def play(env, respond, seed, index):
    """Run one episode with ``respond(obs) -> text``; returns the reward, last info and turn count."""
    obs, info = env.reset(seed=seed, options={"index": index})
    turns = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(respond(obs))
        turns += 1
        if terminated or truncated:
            return reward, info, turns


@pytest.mark.parametrize("index", range(6))
def test_oracle_that_keeps_the_evidence_in_memory_reaches_reward_one(index):
    env = make_toy()
    golds = list(ToySource().episode(index, np.random.default_rng(0)).answers)
    for seed in range(3):
        reward, info, _ = play(env, GoldLineOracle(golds).act, seed, index)
        assert reward == 1.0, info["answers"]
        assert info["num_chunks"] > 1


def test_a_memory_too_small_for_the_evidence_loses_it():
    env = make_toy(memory_tokens=3)
    golds = list(ToySource().episode(2, np.random.default_rng(0)).answers)
    reward, info, _ = play(env, GoldLineOracle(golds).act, 0, 2)
    assert reward < 1.0


@pytest.mark.parametrize("index", [0, 2, 4])
def test_episode_is_exactly_chunks_plus_questions_turns(index):
    env = make_toy()
    reward, info, turns = play(env, lambda obs: NoMemoryPolicy().act([obs])[0].text, seed=1, index=index)
    assert turns == info["num_chunks"] + info["num_questions"] == info["max_turns"] == info["turn"]
    with pytest.raises(AtomMemError, match="reset"):
        env.step("more")


def trace(env, responses, seed=5):
    obs, info = env.reset(seed=seed)
    out = [obs["user"], info]
    for response in responses:
        obs, reward, terminated, truncated, info = env.step(response)
        out += [obs["user"], obs["scratchpad"], reward, terminated, truncated, info]
        if terminated:
            break
    return out


def test_same_seed_and_responses_replay_identically_and_survive_pickling():
    responses = ["m1", "m2 \\boxed{x}", "", "m4", "m5", "m6", "m7", "m8", "m9", boxed("a"), boxed("b"), "c"]
    assert trace(make_toy(), responses) == trace(make_toy(), responses)
    env = make_toy()
    env.reset(seed=5)
    for response in responses[:4]:
        env.step(response)
    clone = pickle.loads(pickle.dumps(env))
    for response in responses[4:]:
        a, b = env.step(response), clone.step(response)
        assert a[1:] == b[1:]
        np.testing.assert_equal(a[0], b[0])
        if a[2]:
            break


RESPONSE = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(["\\boxed{", "}", "{", "Marrowfield", "<think>", " ", "\n", "word"]), max_size=40)
    .map("".join),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), memory_tokens=st.integers(1, 40),
       responses=st.lists(RESPONSE, min_size=20, max_size=20))
def test_any_text_keeps_the_invariants(seed, memory_tokens, responses):
    env = make_toy(memory_tokens=memory_tokens)
    obs, info = env.reset(seed=seed)
    length = info["num_chunks"] + info["num_questions"]
    for turn, response in enumerate(responses[:length], start=1):
        obs, reward, terminated, truncated, info = env.step(response)
        assert obs in env.observation_space and json.loads(json.dumps(info)) == info
        assert env.tokenizer.count(obs["scratchpad"]) <= memory_tokens and not truncated
        assert terminated == (turn == length)
        assert reward == (sum(info["em"]) / len(info["em"]) if terminated else 0.0)


EXACT_MATCH = "Output the answer only as an exact match\u2014do not add any description."


@pytest.mark.parametrize("variant, has_sentence", [("memagent", False), ("atommem-paper", True)])
def test_memagent_prompt_option_picks_the_answering_template(variant, has_sentence):
    env = make_toy(memagent_prompt=variant)
    reading, _ = env.reset(seed=0, options={"index": 2})
    obs, _ = read_through(env, response="final notes")
    # One sentence apart, right after the box instruction; the reading prompt is the same in both.
    assert (EXACT_MATCH in obs["user"]) is has_sentence and EXACT_MATCH not in reading["user"]
    expected = prompts.render_memagent_answering(FACTS[0][0], "final notes")
    if has_sentence:
        expected = expected.replace("\\boxed{}.", "\\boxed{}. " + EXACT_MATCH, 1)
    assert obs["user"] == expected
    assert reading["user"] == make_toy().reset(seed=0, options={"index": 2})[0]["user"]


def test_the_default_memagent_prompt_is_memagents_own():
    env = gym.make(MEMAGENT_SYNTHETIC)
    assert env.unwrapped.config.memagent_prompt == "memagent"
    assert gym.make(MEMAGENT_SYNTHETIC, memagent_prompt="atommem-paper").unwrapped.config.memagent_prompt \
        == "atommem-paper"


# ------------------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"memory_token": 512}, "Did you mean 'memory_tokens'"),
        ({"top_k": 3}, "Unknown environment option 'top_k'"),
        ({"memory_tokens": 0}, "memory_tokens=0 must be an integer >= 1"),
        ({"memory_tokens": "1024"}, "memory_tokens='1024' must be an integer"),
        ({"chunk_overlap": 600}, "chunk_overlap=600 must be smaller than chunk_tokens"),
        ({"memagent_prompt": "paper"}, "memagent_prompt='paper' must be one of"),
    ],
)
def test_bad_options_raise_config_errors_that_name_the_fix(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_toy(**kwargs)
    with pytest.raises(ConfigError, match=message):
        gym.make(MEMAGENT_SYNTHETIC, **kwargs)


def test_bad_reset_options_and_actions_raise():
    env = make_toy()
    with pytest.raises(AtomMemError, match="call reset"):
        env.step("x")
    with pytest.raises(ConfigError, match="'index'"):
        env.reset(options={"episode": 1})
    with pytest.raises(ConfigError, match="out of range"):
        env.reset(options={"index": 6})
    env.reset(seed=0)
    with pytest.raises(TypeError, match="str"):
        env.step(3)


# ---------------------------------------------------------------------------------- registry
def test_every_memagent_id_is_registered_beside_its_atommem_twin():
    ids = atommem_env.registered_ids()
    for bench in ("HotpotQA", "2WikiMultihopQA", "MuSiQue"):
        for suffix in ("", "-200", "-400", "-800"):
            memagent, atommem = f"AtomMem-MemAgent-{bench}{suffix}-v0", f"AtomMem-{bench}{suffix}-v0"
            assert memagent in ids and gym.spec(memagent).kwargs == gym.spec(atommem).kwargs
    assert gym.spec(MEMAGENT_SYNTHETIC).kwargs == gym.spec("AtomMem-Synthetic-v0").kwargs
    assert atommem_env.needs_data("AtomMem-MemAgent-MuSiQue-400-v0") and not atommem_env.needs_data(MEMAGENT_SYNTHETIC)


def assert_same_episode(memagent_id, atommem_id, **kwargs):
    a, b = gym.make(memagent_id, memory_tokens=64, **kwargs), gym.make(atommem_id, **kwargs)
    assert isinstance(a.unwrapped, MemAgentEnv)
    obs_a, info_a = a.reset(seed=3, options={"index": 1})
    obs_b, info_b = b.reset(seed=3, options={"index": 1})
    assert obs_a["questions"] == obs_b["questions"] and obs_a["chunk"] == obs_b["chunk"]
    assert a.unwrapped._chunks == b.unwrapped._chunks and info_a["episode_id"] == info_b["episode_id"]


def test_memagent_synthetic_sees_the_same_episodes_and_chunks_as_atommem():
    assert_same_episode(MEMAGENT_SYNTHETIC, "AtomMem-Synthetic-v0", num_documents=60)


def test_memagent_real_ids_see_the_same_episodes_and_chunks_as_atommem():
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data is absent: real benchmark ids need their data files")
    assert_same_episode("AtomMem-MemAgent-HotpotQA-200-v0", "AtomMem-HotpotQA-200-v0", data_dir=str(data))


# ------------------------------------------------------------------------------------ harness
def test_rollout_and_summarize_report_no_operations():
    seeds = list(range(4))
    trajectories = rollout(lambda: gym.make(MEMAGENT_SYNTHETIC), NoMemoryPolicy(), seeds, env_id=MEMAGENT_SYNTHETIC)
    summary = summarize(trajectories)
    assert summary["episodes"] == 4 and summary["truncated"] == 0.0
    assert all(summary[f"{key}_per_turn"] == 0.0 for key in OP_RATE_KEYS)
    assert summary["invalid_per_turn"] == 0.0 and summary["store_size"] == 0.0
    for traj in trajectories:
        assert traj.terminated and len(traj.turns) == 5  # 4 chunks of Synthetic + 1 question
        assert [t.phase for t in traj.turns] == ["reading"] * 3 + ["answering", "done"]
        json.dumps(traj.to_json())


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_scripted_policy_runs_an_episode_without_crashing(name):
    (traj,) = rollout(lambda: gym.make(MEMAGENT_SYNTHETIC), BASELINES[name](), [0])
    assert traj.terminated and 0.0 <= traj.reward <= 1.0


def test_heuristic_policy_memory_is_its_whole_response():
    env = gym.make(MEMAGENT_SYNTHETIC)
    obs, _ = env.reset(seed=0)
    response = HeuristicMemoryPolicy().act([obs])[0].text
    obs, *_ = env.step(response)
    assert obs["scratchpad"] == response


def test_evaluate_runs_the_memagent_ids_and_the_memagent_preset(tmp_path, capsys):
    evaluate.main(["--env-ids", MEMAGENT_SYNTHETIC, "--policy", "no-memory", "--episodes", "2",
                   "--data-dir", str(tmp_path / "unused"), "--out-dir", str(tmp_path / "run"), "--no-plots"])
    assert f"| {MEMAGENT_SYNTHETIC} | no-memory | 2 |" in capsys.readouterr().out
    preset = evaluate.parse_args(["--preset", "memagent"]).env_ids
    assert len(preset) == 9 and set(preset) <= set(gym.registry)
    assert all(i.startswith("AtomMem-MemAgent-") for i in preset)
