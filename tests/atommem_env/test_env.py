"""Episode dynamics of MemoryQAEnv (SPEC §3–§4, §7) on the tiny toy source of conftest.py."""

import json
import pickle

import numpy as np
import pytest

from atommem_env.env import READING, MemoryQAEnv
from atommem_env.errors import AtomMemError, ConfigError
from atommem_env.observation import Phase, Progress
from atommem_env.tokenization import RegexTokenizer

ADD = "<add_memory>note</add_memory>"


def error_codes(info):
    return [e["code"] for e in info["errors"]]


def read_to_answering(env, obs, info):
    """Advance through every chunk by writing one entry per turn."""
    while info["phase"] == READING:
        obs, _, _, _, info = env.step(ADD)
    return obs, info


def test_reset_observation_is_in_space_and_info_is_plain_json(make_env):
    env = make_env()
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space
    assert obs["phase"] == 0 and obs["chunk"] and obs["question"] == ""
    assert json.loads(json.dumps(info)) == info
    assert info["num_chunks"] > 2 and info["phase"] == READING


def test_progress_and_phase_names_match_the_observation_and_info(make_env):
    env = make_env()
    obs, info = env.reset(seed=0)
    assert [int(p) for p in Progress] == list(range(env.observation_space["progress"].shape[0]))
    assert (Phase.READING, Phase.ANSWERING) == (0, 1)
    counts = {Progress.CHUNK: "chunk_index", Progress.CHUNKS: "num_chunks", Progress.QUESTION: "question_index",
              Progress.QUESTIONS: "num_questions", Progress.TURN: "turn"}
    while True:
        assert type(obs["phase"]) is int and obs["progress"].dtype == np.int64
        assert obs["phase"] == (Phase.READING if info["phase"] == READING else Phase.ANSWERING)
        assert {f: int(obs["progress"][f]) for f in counts} == {f: info[key] for f, key in counts.items()}
        if info["phase"] == "done":
            break
        action = ADD if obs["phase"] == Phase.READING else "<final_answer>\\boxed{x}</final_answer>"
        obs, _, _, _, info = env.step(action)


def test_chunk_advances_only_after_create_or_update(make_env):
    env = make_env()
    obs, info = env.reset(seed=0)
    first = obs["chunk"]
    obs, _, _, _, info = env.step("<update_memory>thinking</update_memory><update_query>x</update_query>")
    assert not info["advanced"] and obs["chunk"] == first and info["chunk_index"] == 0
    obs, _, _, _, info = env.step(ADD)
    assert info["advanced"] and info["chunk_index"] == 1 and obs["chunk"] != first
    obs, _, _, _, info = env.step("<modify_memory>Memory 1: changed note</modify_memory>")
    assert info["advanced"] and info["updated_ids"] == [0] and info["chunk_index"] == 2


def test_failed_create_does_not_advance(make_env):
    env = make_env()
    env.reset(seed=0)
    _, _, _, _, info = env.step("<add_memory> </add_memory>")
    assert not info["advanced"] and error_codes(info) == ["empty_content"]


def test_advance_always_moves_every_turn(make_env):
    env = make_env(advance="always")
    env.reset(seed=0)
    _, _, _, _, info = env.step("no tags at all")
    assert info["advanced"] and info["chunk_index"] == 1 and error_codes(info) == ["no_action"]


def test_fourth_consecutive_read_is_refused_and_a_write_resets_the_count(make_env):
    env = make_env()
    env.reset(seed=0)
    for i in range(3):
        obs, _, _, _, info = env.step(f"<update_query>q{i}</update_query>")
        assert not info["errors"] and obs["query"] == f"q{i}"
    obs, _, _, _, info = env.step("<update_query>q3</update_query>")
    assert error_codes(info) == ["too_many_reads"] and obs["query"] == "q2"
    assert "consecutive queries" in obs["feedback"] and obs["feedback"] in obs["user"]
    obs, _, _, _, info = env.step("<update_memory>s</update_memory><update_query>q4</update_query>")
    assert not info["errors"] and obs["query"] == "q4"


def test_answering_phase_one_question_per_turn(make_env):
    env = make_env()
    obs, info = env.reset(seed=0, options={"index": 2})  # three questions
    obs, info = read_to_answering(env, obs, info)
    assert obs["phase"] == 1 and obs["chunk"] == "" and obs["question"] == obs["questions"][0]
    assert "problem:\n" + obs["questions"][0] in obs["user"]
    obs, reward, term, _, info = env.step(
        "<final_answer>\\boxed{Marrowfield}</final_answer><final_answer>\\boxed{x}</final_answer>"
    )
    assert info["question_index"] == 1 and error_codes(info) == ["extra_answer"] and not term
    assert obs["question"] == obs["questions"][1] and reward == 0.0


def test_fourth_read_in_answering_skips_the_question(make_env):
    env = make_env()
    obs, info = env.reset(seed=0, options={"index": 1})  # two questions
    obs, info = read_to_answering(env, obs, info)
    for i in range(3):
        _, _, _, _, info = env.step(f"<update_query>q{i}</update_query>")
        assert info["question_index"] == 0
    _, _, _, _, info = env.step("<update_query>one more</update_query>")
    assert info["question_index"] == 1 and error_codes(info) == ["too_many_reads"]
    _, reward, term, _, info = env.step("<final_answer>\\boxed{Tessaline Works}</final_answer>")
    assert term and info["skipped"] == [True, False] and info["em"] == [0.0, 1.0] and reward == 0.5


def test_each_answer_is_scored_against_its_own_gold(make_env):
    env = make_env()
    obs, info = env.reset(seed=0, options={"index": 1})
    read_to_answering(env, obs, info)
    env.step("<final_answer>\\boxed{Tessaline Works}</final_answer>")  # gold of question 2
    _, reward, term, _, info = env.step("<final_answer>\\boxed{Marrowfield}</final_answer>")
    assert term and reward == 0.0 and info["em"] == [0.0, 0.0]
    assert info["golds"] == ["Marrowfield", "Tessaline Works"]


def test_final_answer_while_reading_is_feedback_not_an_answer(make_env):
    env = make_env()
    env.reset(seed=0)
    _, _, _, _, info = env.step("<final_answer>\\boxed{Marrowfield}</final_answer>" + ADD)
    assert error_codes(info) == ["not_answering"] and info["advanced"]


def test_truncation_scores_what_was_answered(make_env):
    env = make_env(max_turns=2)
    env.reset(seed=0, options={"index": 0})
    env.step(ADD)
    _, reward, term, trunc, info = env.step(ADD)
    assert trunc and not term and reward == 0.0
    assert info["answers"] == [""] and info["em"] == [0.0] and info["phase"] == "done"
    with pytest.raises(AtomMemError, match="reset"):
        env.step(ADD)


def test_unknown_rank_is_feedback_and_other_tags_still_run(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, _, _, _, info = env.step("<delete_memory>Memory 4</delete_memory><add_memory>kept</add_memory>")
    assert error_codes(info) == ["unknown_rank"] and info["created_ids"] == [0]
    assert [op["ok"] for op in info["ops"]] == [False, True]
    assert "Memory 4 is not in the current list" in obs["feedback"]


def test_ranks_refer_to_the_list_shown_in_the_observation(make_env):
    env = make_env(top_k=6)
    env.reset(seed=0)
    env.step("<add_memory>alpha river</add_memory>")
    obs, _, _, _, _ = env.step("<add_memory>beta mountain</add_memory><update_query>beta mountain</update_query>")
    obs, _, _, _, _ = env.step("<update_memory>s</update_memory>")  # the query now shows beta first
    assert obs["memories"][0] == "beta mountain"
    _, _, _, _, info = env.step("<delete_memory>Memory 1</delete_memory><delete_memory>Memory 1</delete_memory>")
    assert info["deleted_ids"] == [1] and error_codes(info) == ["unknown_id"]
    assert [e.text for e in env.memory.entries()] == ["alpha river"]


def test_scratchpad_truncation_is_reported(make_env):
    env = make_env(scratchpad_tokens=3)
    env.reset(seed=0)
    obs, _, _, _, info = env.step("<update_memory>one two three four five</update_memory>")
    assert obs["scratchpad"] == "one two three" and error_codes(info) == ["scratchpad_truncated"]
    assert info["ops"][0]["ok"] and info["num_invalid"] == 0


def test_long_response_is_cut_before_parsing(make_env):
    env = make_env(response_tokens=24)
    env.reset(seed=0)
    _, _, _, _, info = env.step("<add_memory>short</add_memory>" + " filler" * 20 + "<add_memory>late</add_memory>")
    assert info["created_ids"] == [0] and "response_truncated" in error_codes(info)


def test_entry_too_long_and_capacity(make_env):
    env = make_env(max_entry_tokens=3, capacity=1)
    env.reset(seed=0)
    _, _, _, _, info = env.step("<add_memory>one two three four</add_memory><add_memory>ok</add_memory>"
                                "<add_memory>full</add_memory>")
    assert error_codes(info) == ["entry_too_long", "store_full"] and info["memory_size"] == 1


@pytest.mark.parametrize(
    "kwargs, action, code",
    [
        ({"show_scratchpad": False}, "<update_memory>x</update_memory>", "disabled"),
        ({"freeze_scratchpad": True}, "<update_memory>x</update_memory>", "disabled"),
        ({"show_retrieval": False}, ADD, "disabled"),
        ({"enable_delete": False}, "<delete_memory>Memory 1</delete_memory>", "disabled"),
        ({"enable_update": False}, "<modify_memory>Memory 1: y</modify_memory>", "disabled"),
    ],
)
def test_ablation_switches_disable_operations(make_env, kwargs, action, code):
    env = make_env(**kwargs)
    env.reset(seed=0)
    _, _, _, _, info = env.step(action)
    assert code in error_codes(info)
    assert "disabled" in env._system


def test_hidden_sections_are_empty_in_the_observation(make_env):
    env = make_env(show_scratchpad=False, show_retrieval=False)
    obs, _ = env.reset(seed=0)
    assert obs["scratchpad"] == "" and obs["query"] == "" and obs["memories"] == ()
    assert "short term memory" not in obs["user"] and "current query" not in obs["user"]


def test_top_k_limits_the_shown_list(make_env):
    env = make_env(top_k=3)
    env.reset(seed=0)
    obs, _, _, _, _ = env.step("".join(f"<add_memory>note {i}</add_memory>" for i in range(5)))
    assert len(obs["memories"]) == 3 and obs["user"].count("\nMemory ") == 3


def test_store_everything_inserts_the_chunk_documents(make_env):
    env = make_env(store_everything=True, advance="always")
    env.reset(seed=0)
    _, _, _, _, info = env.step("<update_memory>x</update_memory>")
    assert info["memory_size"] >= 2


def test_placeholder_query_still_shows_memories(make_env):
    env = make_env()
    env.reset(seed=0)
    obs, _, _, _, _ = env.step("<add_memory>Marrowfield is a town.</add_memory>")
    assert obs["query"] == "defult query, change it!" and obs["memories"] == ("Marrowfield is a town.",)


def test_reset_options(make_env, toy_source):
    env = make_env()
    _, info = env.reset(seed=0, options={"index": 4})
    assert info["index"] == 4 and info["episode_id"] == "toy/4"
    with pytest.raises(ConfigError, match="out of range"):
        env.reset(options={"index": len(toy_source)})
    with pytest.raises(ConfigError, match="index"):
        env.reset(options={"idx": 1})


def test_pinned_index_equals_drawn_index_for_the_same_seed(make_env):
    env = make_env()
    obs_drawn, info = env.reset(seed=11)
    obs_pinned, _ = env.reset(seed=11, options={"index": info["index"]})
    assert obs_drawn["user"] == obs_pinned["user"]


def test_bad_constructor_arguments(toy_source):
    with pytest.raises(ConfigError, match="Did you mean 'top_k'"):
        MemoryQAEnv(toy_source, topk=3)
    with pytest.raises(ConfigError, match="render_mode"):
        MemoryQAEnv(toy_source, render_mode="human")
    with pytest.raises(ConfigError, match="EpisodeSource"):
        MemoryQAEnv([1, 2, 3])


def test_non_text_action_is_a_type_error(make_env):
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(TypeError, match="response text"):
        env.step(42)


def test_render_ansi_returns_the_user_message(make_env):
    env = make_env(render_mode="ansi")
    obs, _ = env.reset(seed=0)
    assert env.render() == obs["user"]


def test_as_messages_helper(make_env):
    from atommem_env import as_messages

    obs, _ = make_env().reset(seed=0)
    messages = as_messages(obs)
    assert [m["role"] for m in messages] == ["system", "user"] and messages[1]["content"] == obs["user"]


SCRIPT = [
    "<update_memory>start</update_memory><update_query>weather</update_query>",
    "<add_memory>first</add_memory><add_memory>second</add_memory>",
    "<modify_memory>Memory 1: edited</modify_memory>",
    "<delete_memory>Memory 2</delete_memory><add_memory>third</add_memory>",
    "garbage <add_memory>",
] + [ADD] * 40 + ["<final_answer>\\boxed{Marrowfield}</final_answer>"] * 3


def run_script(env, seed, index, script):
    obs, info = env.reset(seed=seed, options={"index": index})
    trace = [(obs, info)]
    for action in script:
        obs, reward, term, trunc, info = env.step(action)
        trace.append((obs, reward, term, trunc, info))
        if term or trunc:
            break
    return trace


def assert_same_trace(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for p, q in zip(x, y, strict=True):
            if isinstance(p, dict):
                assert p.keys() == q.keys()
                for key in p:
                    np.testing.assert_equal(p[key], q[key])
            else:
                assert p == q


def test_replay_reproduces_every_observation_reward_and_info(make_env):
    assert_same_trace(run_script(make_env(), 5, 2, SCRIPT), run_script(make_env(), 5, 2, SCRIPT))


def test_pickle_mid_episode_continues_identically(make_env):
    env = make_env()
    env.reset(seed=3, options={"index": 1})
    for action in SCRIPT[:4]:
        env.step(action)
    clone = pickle.loads(pickle.dumps(env))
    for action in SCRIPT[4:]:
        a, b = env.step(action), clone.step(action)
        assert_same_trace([a], [b])
        if a[2] or a[3]:
            break


def test_memory_never_leaks_between_envs(make_env):
    one, two = make_env(), make_env()
    one.reset(seed=0)
    two.reset(seed=0)
    one.step("<add_memory>secret of env one</add_memory>")
    obs, _, _, _, info = two.step("<update_query>secret</update_query>")
    assert info["memory_size"] == 0 and obs["memories"] == ()
    one.reset(seed=1)
    assert len(one.memory) == 0 and one.memory.scratchpad == ""


def test_long_contexts_are_centre_truncated(make_env):
    env = make_env(max_context_tokens=100, chunk_tokens=60)
    env.reset(seed=0)
    context = env.unwrapped._episode.context
    chunks = env.unwrapped._chunks
    assert context.startswith(chunks[0][:20]) and context.endswith(chunks[-1][-20:])
    assert sum(RegexTokenizer().count(c) for c in chunks) < RegexTokenizer().count(context)
