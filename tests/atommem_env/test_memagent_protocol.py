"""MemAgentEnv under protocol="reference": the AtomMem reference's multi-question MemAgent baseline.

ref@e5a9b3d ``AtomMem/recurrent/impls/memory_multiquery.py`` (RUCBM/AtomMem; deleted there later):
``parse_action`` (:295-308) takes a response containing ``\\boxed{`` as the answer to the current
question, in either phase, and any other as the new memory; ``update`` (:230-240) ends an episode after
41 responses; the memory starts as ``None``. Its reward is ``reward_score/__init__.py:25-38`` with
``hotpotqa.compute_score``. Toy episodes (tests/conftest.py): index 2 has three questions.
"""

from __future__ import annotations

import gymnasium as gym
import pytest

from atommem_env import prompts, protocol_rules
from atommem_env.memagent import MemAgentEnv
from atommem_env.protocol import ATOMMEM, ATOMMEM_RULES, MEMAGENT_RULES, REFERENCE, RULES, with_rules
from tests.conftest import FACTS, ToySource

GOLDS = [answer for _, answer, _ in FACTS]
NOTES = "Zorblax Quen was born in Marrowfield; Ilsa Varn founded Tessaline Works."


def boxed(answer: str) -> str:
    return f"The answer is \\boxed{{{answer}}}."


def start(protocol, index=2, **kwargs) -> tuple[MemAgentEnv, dict, dict]:
    kwargs.setdefault("chunk_tokens", 60)
    kwargs.setdefault("chunk_overlap", 5)
    env = MemAgentEnv(ToySource(), protocol=protocol, **kwargs)
    obs, info = env.reset(seed=0, options={"index": index})
    return env, obs, info


def read_through(env, info, response=NOTES) -> dict:
    for _ in range(info["num_chunks"]):
        info = env.step(response)[4]
    assert info["phase"] == "answering"
    return info


def answer_all(protocol, answers, **kwargs) -> tuple[float, dict]:
    """Read through the three-question episode, then give ``answers``; returns the reward and final info."""
    env, _, info = start(protocol, **kwargs)
    read_through(env, info)
    for answer in answers:
        _, reward, terminated, truncated, info = env.step(answer)
    assert terminated or truncated
    return reward, info


# ------------------------------------------------------------------------------------- scoring
def test_reference_scoring_requires_a_box_in_the_last_300_characters() -> None:
    late = boxed(GOLDS[0]) + " because" + " it says so" * 40  # a box, but not in the last 300 characters
    answers = [late, boxed(GOLDS[1]), boxed(GOLDS[2])]
    assert answer_all("reference", answers)[1]["em"] == [0.0, 1.0, 1.0]
    assert answer_all("atommem", answers)[1]["em"] == [1.0, 1.0, 1.0]
    plain = [GOLDS[0], boxed(GOLDS[1]), boxed(GOLDS[2])]  # a plain answer: ours counts it, the rule does not
    assert answer_all(with_rules(ATOMMEM, REFERENCE, ["require_box"]), plain)[1]["em"] == [0.0, 1.0, 1.0]
    assert answer_all("atommem", plain)[1]["em"] == [1.0, 1.0, 1.0]


def test_reference_scoring_matches_any_gold_of_the_episode() -> None:
    answers = [boxed(g) for g in reversed(GOLDS)]  # each is a gold of the episode, only the middle its own
    reward, info = answer_all("reference", answers)
    assert info["em"] == [1.0, 1.0, 1.0] and reward == 1.0
    reward, info = answer_all("atommem", answers)
    assert info["em"] == [0.0, 1.0, 0.0] and reward == pytest.approx(1 / 3)


def test_reference_scoring_normalizes_with_strip_string() -> None:
    # MATH strip_string drops spaces and keeps punctuation and articles; SQuAD does the opposite.
    answers = [boxed("Marrowfield"), boxed("TessalineWorks"), boxed("The Odo Pellam.")]
    assert answer_all("reference", answers)[1]["em"] == [1.0, 1.0, 0.0]
    assert answer_all("atommem", answers)[1]["em"] == [1.0, 0.0, 1.0]


def test_reference_scores_the_responses_not_the_recorded_answers() -> None:
    # The single <final_answer>'s content is what the reference's reward reads, not the last box.
    tagged = "<final_answer>\\boxed{Nowhere}</final_answer> no, \\boxed{Marrowfield}"
    answers = [tagged, boxed(GOLDS[1]), boxed(GOLDS[2])]
    assert answer_all("reference", answers)[1]["em"] == [0.0, 1.0, 1.0]
    recorded = with_rules(REFERENCE, ATOMMEM, ["scored_answers"])
    assert answer_all(recorded, answers)[1]["em"] == [1.0, 1.0, 1.0]
    # A reading response that answers nothing is scored too ("\boxed x" in one <final_answer>), and the
    # sum over responses is divided by the number of questions.
    env, _, info = start("reference")
    read_through(env, info, "<final_answer>\\boxed Marrowfield</final_answer>")
    for answer in GOLDS:
        _, reward, terminated, _, info = env.step(boxed(answer))
    assert terminated and info["em"] == [1.0, 1.0, 1.0] and info["extra_answer_em"] == [1.0] * info["num_chunks"]
    assert reward == pytest.approx((3 + info["num_chunks"]) / 3)


# ------------------------------------------------------------------------------------ dynamics
def test_a_boxed_reading_response_answers_the_question_and_keeps_the_chunk() -> None:
    """ref@e5a9b3d memory_multiquery.py:301-305: a response with "\\boxed{" advances answer_idx (or ends
    the episode on the last question); context_step and the memory stay."""
    env, _, _ = start("reference")
    obs = env.step(NOTES)[0]
    obs, _, _, _, info = env.step(boxed(GOLDS[0]))
    assert info["question_index"] == 1 and info["chunk_index"] == 1 and not info["advanced"]
    assert info["phase"] == "reading" and obs["scratchpad"] == NOTES
    env.step(boxed(GOLDS[1]))
    _, reward, terminated, _, info = env.step(boxed(GOLDS[2]))  # the last question: the episode ends
    assert terminated and info["phase"] == "done" and info["chunk_index"] == 1 and reward == 1.0
    env, _, _ = start("atommem")  # ours: a reading response is memory, whatever it holds
    obs, _, _, _, info = env.step(boxed(GOLDS[0]))
    assert info["question_index"] == 0 and info["advanced"] and obs["scratchpad"] == boxed(GOLDS[0])


def test_an_unboxed_answer_becomes_the_memory_and_the_question_is_asked_again() -> None:
    """ref@e5a9b3d memory_multiquery.py:306-308: without "\\boxed{", the response is the memory, also
    while answering; answer_idx stays, so the next prompt asks the same question over that memory."""
    env, _, info = start("reference")
    read_through(env, info)
    obs, _, _, _, info = env.step("Marrowfield, I think")
    assert info["question_index"] == 0 and not info["advanced"] and obs["scratchpad"] == "Marrowfield, I think"
    assert obs["question"] == FACTS[0][0] and "<memory>\nMarrowfield, I think\n</memory>" in obs["user"]
    info = env.step(boxed(GOLDS[0]))[4]
    assert info["question_index"] == 1
    env, _, info = start("atommem")
    read_through(env, info)
    obs, _, _, _, info = env.step("Marrowfield, I think")
    assert info["question_index"] == 1 and obs["scratchpad"] == NOTES


def test_the_reference_ends_an_episode_after_41_responses() -> None:
    """ref@e5a9b3d memory_multiquery.py:237-240: agent_step > max_chunks (40) ends the episode."""
    env, _, info = start("reference")
    read_through(env, info)
    for turn in range(info["num_chunks"] + 1, 42):
        _, reward, terminated, truncated, info = env.step("still thinking")
        assert truncated == (turn == 41) and not terminated and info["max_turns"] == 41
    assert reward == 0.0 and info["em"] == [0.0, 0.0, 0.0] and info["answers"] == ["", "", ""]
    env, _, info = start("atommem")
    assert info["max_turns"] == info["num_chunks"] + info["num_questions"]


def test_the_reference_shows_the_memory_as_stored() -> None:
    """ref@e5a9b3d memory_multiquery.py:175,213-215: the memory array starts as None, formatted "None";
    a blank response is then shown blank. Ours shows MemAgent's "No previous memory" for both."""
    env, obs, _ = start("reference")
    assert "<memory>\nNone\n</memory>" in obs["user"] and obs["scratchpad"] == ""
    obs = env.step("   ")[0]
    assert "<memory>\n   \n</memory>" in obs["user"]
    env, obs, _ = start("atommem")
    assert f"<memory>\n{prompts.NO_MEMORY}\n</memory>" in obs["user"]
    obs = env.step("   ")[0]
    assert f"<memory>\n{prompts.NO_MEMORY}\n</memory>" in obs["user"]


def test_the_reference_does_not_cut_the_memory_to_memory_tokens() -> None:
    long = "one two three four five six seven eight"
    env, _, _ = start("reference", memory_tokens=5)
    obs, _, _, _, info = env.step(long)
    assert obs["scratchpad"] == long and not info["memory_truncated"]
    env, _, _ = start("reference", memory_tokens=5, response_tokens=6)  # the generation cap still holds
    obs, _, _, _, info = env.step(long)
    assert obs["scratchpad"] == "one two three four five six" and info["memory_truncated"]
    env, _, _ = start("atommem", memory_tokens=5)
    assert env.step(long)[0]["scratchpad"] == "one two three four five"


# ------------------------------------------------------------------------------------- rules
# A crafted episode that each rule MemAgentEnv reads changes (toy episode 2: 9 chunks, 3 questions).
# The comments say what each response does under the reference.
RESPONSES = [
    NOTES,                                                            # memory (cut by limit_scratchpad)
    "<add_memory>a fact</add_memory><update_query>q</update_query>",  # memory: the store tags mean nothing
    "",                                                               # a blank memory (raw_memory_text)
    "<final_answer>Marrowfield</final_answer>",  # memory, yet scored as an extra answer (require_box)
    boxed(GOLDS[1]),                             # answers question 1 while reading, with question 2's gold
    NOTES, "<delete_memory>Memory 1</delete_memory>", "no idea", NOTES, NOTES,  # the last chunks
    "Tessaline Works, I believe",                # unboxed: the memory, and question 2 is asked again
    "<final_answer>\\boxed{Nowhere}</final_answer> \\boxed{Tessaline Works}",  # scored: "Nowhere"
    boxed("The Odo Pellam."),                    # right under SQuAD normalization only; the episode ends
]


def trace(protocol) -> list:
    env, obs, info = start(protocol, memory_tokens=3)
    out = [obs["user"], info]
    for response in RESPONSES:
        obs, reward, terminated, truncated, info = env.step(response)
        out += [obs["user"], obs["scratchpad"], reward, terminated, truncated, info]
        if terminated or truncated:
            break
    return out


def test_the_crafted_episode_plays_as_the_reference_did() -> None:
    *_, reward, terminated, truncated, info = trace(REFERENCE)
    assert terminated and not truncated and info["turn"] == len(RESPONSES)
    assert info["em"] == [1.0, 0.0, 0.0] and info["extra_answer_em"] == [0.0] and reward == pytest.approx(1 / 3)


@pytest.mark.parametrize("rule", [r for r in RULES if r not in MEMAGENT_RULES])
def test_rules_without_meaning_here_are_accepted_and_change_nothing(rule) -> None:
    assert trace(with_rules(REFERENCE, ATOMMEM, [rule])) == trace(REFERENCE)
    assert trace(with_rules(ATOMMEM, REFERENCE, [rule])) == trace(ATOMMEM)


@pytest.mark.parametrize("rule", [r for r in MEMAGENT_RULES if r not in ("document_order", "grouping",
                                                                          "shared_paragraphs")])
def test_every_rule_read_here_changes_this_crafted_episode(rule) -> None:
    """The rules MemAgentEnv reads (but the data rules, which act on benchmark sources) each make a
    difference on RESPONSES: no rule is listed as read and then ignored."""
    assert trace(with_rules(REFERENCE, ATOMMEM, [rule])) != trace(REFERENCE)


@pytest.mark.parametrize("protocol", ["reference", "reference-grouping", REFERENCE, ATOMMEM])
def test_memagent_ids_take_every_protocol(protocol) -> None:
    env = gym.make("AtomMem-MemAgent-Synthetic-v0", protocol=protocol)
    obs, info = env.reset(seed=0)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(boxed("Orin Vale") if obs["phase"] else "notes")
        done = terminated or truncated
    assert 0.0 <= reward <= 1.0 and len(info["em"]) == info["num_questions"]


def test_each_id_names_the_rules_its_env_reads() -> None:
    assert protocol_rules("AtomMem-MemAgent-MuSiQue-800-v0") == MEMAGENT_RULES
    assert protocol_rules("AtomMem-MemAgent-Synthetic-v0") == MEMAGENT_RULES
    assert protocol_rules("AtomMem-HotpotQA-200-v0") == ATOMMEM_RULES
    assert set(ATOMMEM_RULES) | set(MEMAGENT_RULES) == set(RULES)
