import pytest

from atommem_env.scoring import exact_match, f1_score, normalize_answer, score_answer, substring_match


@pytest.mark.parametrize(
    "raw, norm",
    [("The Eiffel  Tower!", "eiffel tower"), ("an apple, a pear", "apple pear"), ("U.S.A.", "usa"), ("", "")],
)
def test_normalize(raw, norm):
    assert normalize_answer(raw) == norm


def test_exact_match_is_normalized_and_empty_never_matches():
    assert exact_match("the Beatles", "Beatles") == 1.0
    assert exact_match("Beatles band", "Beatles") == 0.0
    assert exact_match("", "") == 0.0
    assert exact_match("the", "a") == 0.0


def test_f1_on_hand_made_numbers():
    assert f1_score("new york city", "new york") == pytest.approx(0.8)
    assert f1_score("paris", "london") == 0.0
    assert f1_score("Paris", "paris") == 1.0


def test_substring_match_respects_word_boundaries():
    assert substring_match("born in Paris, France", "Paris") == 1.0
    assert substring_match("Parisian", "Paris") == 0.0
    assert substring_match("anything", "") == 0.0


def test_score_answer_takes_the_best_gold():
    score = score_answer("NYC", ["New York City", "nyc"])
    assert (score.em, score.f1, score.substring_em) == (1.0, 1.0, 1.0)
    assert score_answer("x", []).em == 0.0
