"""The reference's scoring re-implemented (ref: verl/utils/reward_score/hotpotqa.py, __init__.py)."""

from __future__ import annotations

import pytest

from atommem_env.reference_scoring import answer_of_response, matches, reference_boxed, strip_string

MATH = {"normalization": "math", "require_box": True}
SQUAD = {"normalization": "squad", "require_box": False}


@pytest.mark.parametrize("answer, gold, reference, ours", [
    ("Beatles", "The Beatles", 0.0, 1.0),  # FIDELITY §6: articles are kept by strip_string
    ("St Louis", "St. Louis", 0.0, 1.0),  # punctuation is kept
    ("NewYork", "New York", 1.0, 0.0),  # every space is removed
    ("PARIS", "paris", 1.0, 1.0),  # both lower-case
    ("3.5 %", "3.5\\%", 0.0, 1.0),
])
def test_strip_string_against_squad_examples(answer, gold, reference, ours) -> None:
    assert matches(f"\\boxed{{{answer}}}", [gold], **MATH) == reference
    assert matches(f"\\boxed{{{answer}}}", [gold], **SQUAD) == ours


def test_strip_string_rules() -> None:
    assert strip_string("a b\nc") == "abc"
    assert strip_string("\\dfrac{1}{2}") == "\\frac{1}{2}"
    assert strip_string("x .5") == "x0.5"
    assert strip_string("90^\\circ") == "90"


def test_an_unboxed_answer_scores_zero_only_when_a_box_is_required() -> None:  # S10
    assert matches("Paris", ["Paris"], **MATH) == 0.0
    assert matches("Paris", ["Paris"], normalization="math", require_box=False) == 1.0
    assert matches("Paris", ["Paris"], **SQUAD) == 1.0


def test_reference_box_reading() -> None:
    assert reference_boxed("so \\boxed{Paris}.") == "paris"  # lower-cased
    assert reference_boxed("\\boxed{a} then \\boxed{b}") == "b"  # the last box
    assert reference_boxed("\\boxed{f{x}}") == "f{x}"  # balanced braces
    assert reference_boxed("\\boxed paris$ rest") == "paris"  # the "\boxed x" form
    assert reference_boxed("\\fbox{paris}") is None  # remove_boxed's assertion: scored 0
    assert reference_boxed("\\boxed{paris") is None  # unclosed
    assert reference_boxed("\\boxed{paris}" + "x" * 300) is None  # outside the last 300 characters


def test_any_gold_matches_a_gold_of_another_question() -> None:
    assert matches("\\boxed{yes}", ["no", "yes"], **MATH) == 1.0
    assert matches("\\boxed{yes}", ["no"], **MATH) == 0.0


def test_answer_of_response_is_parse_final_answer() -> None:
    assert answer_of_response("<final_answer>\\boxed{a}</final_answer>") == "\\boxed{a}"
    two = "<final_answer>\\boxed{a}</final_answer><final_answer>\\boxed{b}</final_answer>"
    assert answer_of_response(two) == two  # two tags: the whole response (its last box counts)
    assert answer_of_response("<add_memory>\\boxed{a}</add_memory>") == "<add_memory>\\boxed{a}</add_memory>"
    assert answer_of_response("<add_memory>a</add_memory>") is None
