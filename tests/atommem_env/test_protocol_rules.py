"""Each rule of the reference protocol behaves as the reference code does; ours stays as it was.

Small crafted episodes of the toy source (tests/conftest.py): episode 0 has one question, 1 two,
2 three; short chunks, so reading takes several turns.
"""

from __future__ import annotations

import pytest

from atommem_env.env import MemoryQAEnv
from atommem_env.errors import ConfigError
from atommem_env.observation import Progress
from atommem_env.protocol import (
    ATOMMEM,
    MEMAGENT_ONLY_RULES,
    REFERENCE,
    RULES,
    differing_rules,
    resolve_protocol,
    with_rules,
)

ADD = "<add_memory>{}</add_memory>"
QUERY = "<update_query>{}</update_query>"
ANSWER = "<final_answer>\\boxed{{{}}}</final_answer>"
A_FACT = ADD.format("a fact")


def start(make_env, protocol, index=1, **kwargs) -> tuple[MemoryQAEnv, dict]:
    env = make_env(protocol=protocol, **kwargs)
    obs, _ = env.reset(seed=0, options={"index": index})
    return env, obs


def to_answering(env, response=A_FACT) -> dict:
    while True:
        obs, _, _, _, info = env.step(response)
        if info["phase"] != "reading":
            return info


def reads(obs) -> int:
    return int(obs["progress"][Progress.READS])


# ------------------------------------------------------------------------------- the object
def test_names_resolve_and_rules_switch_one_at_a_time() -> None:
    assert resolve_protocol("reference") is REFERENCE and resolve_protocol(ATOMMEM) is ATOMMEM
    assert set(differing_rules(ATOMMEM, REFERENCE)) == set(RULES) - {"grouping"}
    for rule in RULES:
        assert differing_rules(with_rules(ATOMMEM, REFERENCE, [rule]), ATOMMEM) in ((rule,), ())
        assert differing_rules(with_rules(REFERENCE, ATOMMEM, [rule]), REFERENCE) in ((rule,), ())
    with pytest.raises(ConfigError, match="Unknown protocol rule"):
        with_rules(ATOMMEM, REFERENCE, ["no_such_rule"])
    with pytest.raises(ConfigError, match="protocol="):
        resolve_protocol("paper")


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_switched_alone_plays_an_episode(make_env, rule) -> None:
    env, _ = start(make_env, with_rules(ATOMMEM, REFERENCE, [rule]), index=2)
    info = to_answering(env, ADD.format("x") + QUERY.format("y") + "<delete_memory>Memory 1</delete_memory>")
    done = False
    while not done:
        _, reward, terminated, truncated, info = env.step(ANSWER.format("Marrowfield"))
        done = terminated or truncated
    assert 0.0 <= reward <= 1.0 and len(info["em"]) == 3


@pytest.mark.parametrize("rule", MEMAGENT_ONLY_RULES)
def test_the_memagent_baselines_own_rules_change_nothing_here(make_env, rule) -> None:
    def trace(protocol) -> list:
        env, obs = start(make_env, protocol, index=2)
        out = [obs["user"]]
        for response in [A_FACT, "", "plain text \\boxed{x}", A_FACT * 2] * 4 + [ANSWER.format("Marrowfield")] * 3:
            obs, reward, terminated, truncated, info = env.step(response)
            out += [obs["user"], reward, terminated, truncated, info]
        return out

    assert trace(with_rules(REFERENCE, ATOMMEM, [rule])) == trace(REFERENCE)
    assert trace(with_rules(ATOMMEM, REFERENCE, [rule])) == trace(ATOMMEM)


def test_the_default_protocol_is_atommem(make_env) -> None:
    assert make_env().config.rules == ATOMMEM == make_env(protocol="atommem").config.rules


# ------------------------------------------------------------------------- budget, prompts
def test_turn_budget_is_41_unless_max_turns_is_given(make_env) -> None:
    assert start(make_env, "reference")[0].step(QUERY.format("q"))[4]["max_turns"] == 41
    assert start(make_env, "reference", max_turns=7)[0].step(QUERY.format("q"))[4]["max_turns"] == 7
    assert start(make_env, "atommem")[0].step(QUERY.format("q"))[4]["max_turns"] != 41


def test_no_feedback_in_the_prompt(make_env) -> None:
    for protocol, shown in (("reference", False), ("atommem", True)):
        env, _ = start(make_env, protocol)
        obs, _, _, _, info = env.step("no tags at all")
        assert info["errors"]  # info still says what went wrong
        assert ("Feedback on your previous response" in obs["user"]) == shown
        assert bool(obs["feedback"]) == shown


# ------------------------------------------------------------------------------ dynamics
def test_s1_an_answer_while_reading_counts_and_advances(make_env) -> None:
    env, _ = start(make_env, "reference", index=1)
    info = env.step(ANSWER.format("Marrowfield"))[4]
    assert info["question_index"] == 1 and not info["errors"]
    env, _ = start(make_env, "reference", index=0)  # the last question: the episode ends, scored
    _, reward, terminated, _, info = env.step(ANSWER.format("Marrowfield"))
    assert terminated and reward == 1.0
    env, _ = start(make_env, "atommem", index=1)
    info = env.step(ANSWER.format("Marrowfield"))[4]
    assert info["question_index"] == 0 and info["errors"][0]["code"] == "not_answering"


def test_s2_a_failed_write_still_advances_and_resets_reads(make_env) -> None:
    for protocol, advanced in (("reference", True), ("atommem", False)):
        env, _ = start(make_env, protocol)
        env.step(QUERY.format("q"))
        obs, _, _, _, info = env.step("<modify_memory>Memory 5: new text</modify_memory>")
        assert info["ops"][0]["ok"] is False and info["ops"][0]["error"] == "unknown_rank"
        assert info["advanced"] is advanced and reads(obs) == (0 if advanced else 1)


def test_s3_writes_reset_the_read_counter_while_answering(make_env) -> None:
    for protocol, expected in (("reference", 0), ("atommem", 2)):
        env, _ = start(make_env, protocol)
        to_answering(env)
        env.step(QUERY.format("q1"))
        env.step(QUERY.format("q2"))
        obs = env.step(ADD.format("written while answering"))[0]
        assert reads(obs) == expected


def test_s4_the_read_counter_is_carried_into_answering(make_env) -> None:
    for protocol, expected in (("reference", 1), ("atommem", 0)):
        env, _ = start(make_env, protocol)
        to_answering(env, ADD.format("a fact") + QUERY.format("q"))
        assert reads(env._observe()) == expected


def test_a_fourth_read_while_reading_skips_a_question(make_env) -> None:
    env, _ = start(make_env, "reference", index=1)
    for i in range(3):
        env.step(QUERY.format(f"q{i}"))
    info = env.step(QUERY.format("q3"))[4]
    assert info["question_index"] == 1 and info["phase"] == "reading"
    env, _ = start(make_env, "reference", index=0)  # the last question: the episode ends
    for i in range(3):
        env.step(QUERY.format(f"q{i}"))
    _, reward, terminated, _, info = env.step(QUERY.format("q3"))
    assert terminated and reward == 0.0 and info["skipped"] == [True]
    env, _ = start(make_env, "atommem", index=1)
    for i in range(4):
        info = env.step(QUERY.format(f"q{i}"))[4]
    assert info["question_index"] == 0 and info["errors"][0]["code"] == "too_many_reads"


def test_s11_two_answers_in_one_turn_each_advance_and_score_once(make_env) -> None:
    env, _ = start(make_env, "reference", index=1)
    to_answering(env)
    both = ANSWER.format("Marrowfield") + ANSWER.format("Tessaline Works")
    _, reward, terminated, _, info = env.step(both)
    assert terminated and info["question_index"] == 2
    assert reward == 0.5  # the reference scores the response once, by its last box
    env, _ = start(make_env, "atommem", index=1)
    to_answering(env)
    info = env.step(both)[4]
    assert info["question_index"] == 1 and info["errors"][0]["code"] == "extra_answer"


# ------------------------------------------------------------------------------- parsing
def test_s8_an_unknown_wrapper_swallows_the_tags_inside(make_env) -> None:
    wrapped = "<note>" + ADD.format("inner") + "</note>"
    assert start(make_env, "reference")[0].step(wrapped)[4]["created_ids"] == []
    assert start(make_env, "atommem")[0].step(wrapped)[4]["created_ids"] == [0]
    # The reference's pattern allows attributes, and does not skip reasoning before a lone </think>.
    assert start(make_env, "reference")[0].step('<add_memory id="1">x</add_memory>')[4]["created_ids"] == [0]
    thinking = ADD.format("planned") + "</think>" + QUERY.format("q")
    assert start(make_env, "reference")[0].step(thinking)[4]["created_ids"] == [0]
    assert start(make_env, "atommem")[0].step(thinking)[4]["created_ids"] == []


def _two_entries(make_env, protocol):
    env, _ = start(make_env, protocol, advance="always")
    env.step(ADD.format("first entry") + ADD.format("second entry"))
    env.step(QUERY.format("entry"))
    return env


def test_s5_s6_ranks_are_parsed_with_the_reference_regex(make_env) -> None:
    env = _two_entries(make_env, "reference")
    info = env.step("<delete_memory>Memory 2 (duplicate)</delete_memory>")[4]
    assert len(info["deleted_ids"]) == 1 and info["memory_size"] == 1
    env = _two_entries(make_env, "atommem")
    assert env.step("<delete_memory>Memory 2 (duplicate)</delete_memory>")[4]["memory_size"] == 2
    for written in ("memory 2", "Memory#2"):  # lower case, no space: the reference refuses
        assert _two_entries(make_env, "reference").step(f"<delete_memory>{written}</delete_memory>")[4][
            "memory_size"] == 2
        assert _two_entries(make_env, "atommem").step(f"<delete_memory>{written}</delete_memory>")[4][
            "memory_size"] == 1
    env = _two_entries(make_env, "reference")  # "Memory 0": index -1, the last entry shown
    last = env.memory.shown_ids[-1]
    assert env.step("<delete_memory>Memory 0</delete_memory>")[4]["deleted_ids"] == [last]


def test_s7_empty_tags_act_as_in_the_reference(make_env) -> None:
    env, obs = start(make_env, "reference")
    obs, _, _, _, info = env.step("<update_query> </update_query>")
    assert reads(obs) == 1 and obs["query"] == "defult query, change it!" and not info["errors"]
    info = env.step("<add_memory></add_memory>")[4]
    assert info["advanced"] and info["memory_size"] == 0
    env = _two_entries(make_env, "reference")
    info = env.step("<modify_memory>Memory 1:</modify_memory>")[4]
    assert info["memory_size"] == 1 and info["advanced"]
    env, _ = start(make_env, "reference", index=1)
    to_answering(env)
    assert env.step("<final_answer></final_answer>")[4]["question_index"] == 1
    env, _ = start(make_env, "atommem")
    codes = [e["code"] for e in env.step("<update_query> </update_query><add_memory></add_memory>")[4]["errors"]]
    assert codes == ["empty_content", "empty_content"]


TAGLESS = ["just prose, no tag at all", "<think>only reasoning</think>", "<answer>Marrowfield</answer>"]


@pytest.mark.parametrize("protocol", ["reference", "atommem"])
@pytest.mark.parametrize("response", TAGLESS)
def test_a_response_without_a_known_tag_changes_nothing_but_uses_a_turn(make_env, protocol, response) -> None:
    """No recognised tag: the chunk, the question and the read counter stay; only the turn is used.

    ref ``AtomMem/recurrent/impls/memory_long_short_multiquery.py`` (RUCBM/AtomMem at 7b50580):
    ``update`` builds ``action_rate_metric`` at :381 with no ``'action_rate/not_follow'`` key, so in
    ``parse_action`` a response without any ``<word>…</word>`` pair reaches
    ``action_rate_metric['action_rate/not_follow'] += 1`` (:461-462), which raises ``KeyError`` before
    ``self.context_step[idx] += 1`` (:463) can run; the ``except`` at :491-492 only prints. A response
    whose only pairs are unknown tags passes :461, matches no branch of :466-488, and leaves
    ``move_on`` False (:489-490). Either way ``context_step``, ``answer_idx`` and ``query_times`` are
    untouched, while ``update`` still counts the response in ``agent_step`` (:389-392). Ours does the
    same (with feedback), so no protocol rule is needed.
    """
    env, obs = start(make_env, protocol)
    obs = env.step(QUERY.format("q"))[0]
    before = obs["progress"].copy()
    obs, _, _, _, info = env.step(response)
    assert not info["advanced"] and reads(obs) == 1
    assert (info["chunk_index"], info["question_index"]) == (before[Progress.CHUNK], before[Progress.QUESTION])
    assert info["turn"] == before[Progress.TURN] + 1 and info["phase"] == "reading"
    to_answering(env)
    obs = env.step(QUERY.format("q"))[0]
    obs, _, _, _, info = env.step(response)
    assert info["phase"] == "answering" and info["question_index"] == 0 and reads(obs) == 1


def test_tagless_responses_run_out_the_references_41_turns(make_env) -> None:
    """ref memory_long_short_multiquery.py:389-392: each response counts in ``agent_step``, so tagless
    responses alone end the episode after 41 (``max_chunks=40``), unanswered."""
    env, _ = start(make_env, "reference")
    for turn in range(1, 42):
        _, reward, terminated, truncated, info = env.step("no tags at all")
        assert info["chunk_index"] == 0 and truncated == (turn == 41) and not terminated
    assert reward == 0.0 and info["em"] == [0.0, 0.0]


def test_a_malformed_rank_skips_the_rest_and_the_advance(make_env) -> None:
    response = ADD.format("a") + "<delete_memory>the second one</delete_memory>" + ADD.format("b")
    info = start(make_env, "reference")[0].step(response)[4]
    assert info["created_ids"] == [0] and not info["advanced"]
    info = start(make_env, "atommem")[0].step(response)[4]
    assert info["created_ids"] == [0, 1] and info["advanced"]


def test_update_finds_its_entry_by_text_and_reinserts_it(make_env) -> None:
    env, _ = start(make_env, "reference", advance="always")
    env.step(ADD.format("same text") + ADD.format("same text"))
    env.step(QUERY.format("same text"))
    second = env.memory.shown_ids[1]
    info = env.step("<modify_memory>Memory 2: new text</modify_memory>")[4]
    assert info["deleted_ids"] == [0]  # the oldest entry with the shown text, not the one shown
    assert sorted(e.id for e in env.memory.entries()) == sorted([second, info["created_ids"][0]])
    env, _ = start(make_env, "atommem", advance="always")
    env.step(ADD.format("same text") + ADD.format("same text"))
    env.step(QUERY.format("same text"))
    target = env.memory.shown_ids[1]
    assert env.step("<modify_memory>Memory 2: new text</modify_memory>")[4]["updated_ids"] == [target]
    assert env.memory.get(target) == "new text"


def test_s9_no_entry_length_limit_and_no_scratchpad_budget(make_env) -> None:
    entry, notes = " ".join(["fact"] * 1100), " ".join(["note"] * 2100)  # the response stays under 4,096
    response = ADD.format(entry) + f"<update_memory>{notes}</update_memory>"
    env, obs = start(make_env, "reference")
    obs, _, _, _, info = env.step(response)
    assert info["memory_size"] == 1 and obs["scratchpad"] == notes and not info["errors"]
    env, _ = start(make_env, "atommem")
    codes = {e["code"] for e in env.step(response)[4]["errors"]}
    assert codes == {"entry_too_long", "scratchpad_truncated"}


# ------------------------------------------------------------------------------- scoring
class YesNoSource:
    """One episode of three questions whose golds are yes, no and Paris (FIDELITY §6)."""

    name = "yes-no"

    def __len__(self) -> int:
        return 1

    def episode(self, index, rng):
        from atommem_env.datasets.base import Episode, render_documents

        docs = [f"Doc {i}\nNothing of note happened on day {i}." for i in range(6)]
        return Episode(episode_id="yes-no/0", questions=("Is it?", "Is it not?", "Capital?"),
                       answers=("yes", "no", "Paris"), documents=tuple(docs), context=render_documents(docs))


@pytest.mark.parametrize("protocol, expected", [("reference", 1.0), ("atommem", 1 / 3)])
def test_an_always_yes_policy_gains_from_any_gold_matching(protocol, expected) -> None:
    env = MemoryQAEnv(YesNoSource(), protocol=protocol, chunk_tokens=40, chunk_overlap=5)
    env.reset(seed=0)
    to_answering(env)
    done = False
    while not done:
        _, reward, terminated, truncated, info = env.step(ANSWER.format("yes"))
        done = terminated or truncated
    assert reward == pytest.approx(expected) and sum(info["em"]) == pytest.approx(3 * expected)


def test_reference_reward_scores_every_response_even_a_stray_box(make_env) -> None:
    env, _ = start(make_env, "reference", index=0)
    to_answering(env, ADD.format("\\boxed{Marrowfield}"))  # every reading response carries a box
    _, reward, terminated, _, info = env.step(ANSWER.format("Marrowfield"))
    reading_turns = info["turn"] - 1
    assert terminated and info["em"] == [1.0]
    assert reward == 1.0 + reading_turns  # the reference's sum over responses / 1 question


def test_one_scoring_rule_on_its_own(make_env) -> None:
    protocol = with_rules(ATOMMEM, REFERENCE, ["require_box"])
    for answer, expected in (("<final_answer>Marrowfield</final_answer>", 0.0), (ANSWER.format("marrowfield"), 1.0)):
        env, _ = start(make_env, protocol, index=0)
        to_answering(env)
        assert env.step(answer)[1] == expected
