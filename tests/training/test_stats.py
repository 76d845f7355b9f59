"""agents.training.stats: clustered bootstrap intervals, the paired bootstrap, exact McNemar, Student's t."""

from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.training.stats import (
    TInterval,
    bootstrap_ci,
    mcnemar,
    paired_bootstrap,
    point_estimate,
    t_central,
    t_interval,
    t_quantile,
)
from atommem_env.errors import ConfigError, DataError

FAST = {"resamples": 400}
episode_values = st.lists(st.lists(st.floats(0, 1), min_size=1, max_size=5), min_size=1, max_size=12)
correctness = st.lists(st.tuples(st.booleans(), st.booleans()), max_size=60)


@settings(max_examples=60, deadline=None)
@given(values=episode_values, weighting=st.sampled_from(["question", "episode"]), seed=st.integers(0, 10))
def test_the_interval_contains_the_point_estimate_and_lies_in_the_data_range(values, weighting, seed):
    interval = bootstrap_ci(values, weighting=weighting, seed=seed, **FAST)
    flat = [x for v in values for x in v]
    assert interval.estimate == pytest.approx(point_estimate(values, weighting))
    assert interval.lo <= interval.estimate <= interval.hi
    assert min(flat) - 1e-9 <= interval.lo and interval.hi <= max(flat) + 1e-9


@settings(max_examples=40, deadline=None)
@given(outcomes=st.lists(st.booleans(), min_size=2, max_size=30), size=st.integers(2, 6), seed=st.integers(0, 10))
def test_clustering_widens_the_interval_when_answers_within_an_episode_agree(outcomes, size, seed):
    # Every question of an episode shares its outcome: the strongest within-episode correlation.
    clustered = [[float(o)] * size for o in outcomes]
    naive = [[x] for v in clustered for x in v]  # each question its own "episode": the unclustered bootstrap
    wide = bootstrap_ci(clustered, seed=seed)
    narrow = bootstrap_ci(naive, seed=seed)
    assert wide.estimate == pytest.approx(narrow.estimate)
    assert wide.hi - wide.lo >= narrow.hi - narrow.lo - 1e-9


def test_per_question_and_per_episode_estimates_differ_when_episodes_differ_in_size():
    values = [[1.0], [0.0, 0.0, 0.0]]  # 1 of 4 questions right; episodes score 1 and 0
    assert point_estimate(values, "question") == pytest.approx(0.25)
    assert point_estimate(values, "episode") == pytest.approx(0.5)


def test_intervals_are_reproducible_with_the_seed_and_narrow_with_more_episodes():
    rng = np.random.default_rng(1)
    small = [list(rng.integers(0, 2, 4).astype(float)) for _ in range(20)]
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)
    large = small * 10
    assert bootstrap_ci(large).hi - bootstrap_ci(large).lo < bootstrap_ci(small).hi - bootstrap_ci(small).lo


@settings(max_examples=40, deadline=None)
@given(values=episode_values, seed=st.integers(0, 10))
def test_the_paired_difference_of_a_run_with_itself_is_exactly_zero(values, seed):
    diff = paired_bootstrap(values, values, seed=seed, **FAST)
    assert (diff.estimate, diff.lo, diff.hi) == (0.0, 0.0, 0.0)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), weighting=st.sampled_from(["question", "episode"]))
def test_the_paired_difference_contains_its_estimate_and_flips_sign_with_the_order(data, weighting):
    a = data.draw(episode_values)
    b = [data.draw(st.lists(st.floats(0, 1), min_size=len(v), max_size=len(v))) for v in a]
    ab = paired_bootstrap(a, b, weighting=weighting, **FAST)
    ba = paired_bootstrap(b, a, weighting=weighting, **FAST)
    assert ab.lo <= ab.estimate <= ab.hi
    assert ab.estimate == pytest.approx(point_estimate(b, weighting) - point_estimate(a, weighting))
    assert ab.estimate == pytest.approx(-ba.estimate)
    assert ab.lo == pytest.approx(-ba.hi, abs=1e-9) and ab.hi == pytest.approx(-ba.lo, abs=1e-9)


def test_pairing_removes_the_variation_the_episodes_share():
    # Episodes differ a lot in difficulty, B is always a little better: paired, the difference is sure.
    difficulty = np.linspace(0.05, 0.95, 30)
    a = [[d] * 3 for d in difficulty]
    b = [[d + 0.04] * 3 for d in difficulty]
    diff = paired_bootstrap(a, b)
    assert diff.lo == pytest.approx(0.04) and diff.hi == pytest.approx(0.04)
    unpaired_width = bootstrap_ci(b).hi - bootstrap_ci(b).lo
    assert unpaired_width > 0.1  # a single run's interval is wide: hard and easy episodes


@settings(max_examples=100, deadline=None)
@given(pairs=correctness)
def test_mcnemar_p_is_a_probability_and_symmetric(pairs):
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    forward, backward = mcnemar(a, b), mcnemar(b, a)
    assert 0.0 <= forward.p_value <= 1.0
    assert forward.p_value == backward.p_value
    assert (forward.a_only, forward.b_only) == (backward.b_only, backward.a_only)


@given(pairs=st.lists(st.booleans(), max_size=40))
def test_mcnemar_without_discordant_pairs_gives_p_one(pairs):
    assert mcnemar(pairs, pairs).p_value == 1.0


@pytest.mark.parametrize(
    "a_only, b_only, p",
    [
        (0, 5, 2 / 32),  # 2 * P(X <= 0), X ~ Bin(5, 1/2)
        (1, 9, 2 * 11 / 1024),  # 2 * (C(10,0) + C(10,1)) / 2^10
        (3, 3, 1.0),  # equal counts: the doubled tail exceeds 1 and is capped
        (2, 8, 2 * (1 + 10 + 45) / 1024),
        (0, 1, 1.0),
    ],
)
def test_mcnemar_exact_values(a_only, b_only, p):
    a = [True] * a_only + [False] * b_only + [True, False]  # plus two concordant questions, which do not count
    b = [False] * a_only + [True] * b_only + [True, False]
    result = mcnemar(a, b)
    assert (result.a_only, result.b_only) == (a_only, b_only)
    assert result.p_value == pytest.approx(p)


def test_mcnemar_stays_exact_for_many_discordant_pairs():
    result = mcnemar([True] * 400 + [False] * 600, [False] * 400 + [True] * 600)
    tail = sum(comb(1000, i) for i in range(401)) / 2**1000
    assert result.p_value == pytest.approx(2 * tail) and 0 < result.p_value < 1e-9


def test_bad_inputs_are_refused_with_the_fix():
    with pytest.raises(DataError, match="No episodes"):
        bootstrap_ci([])
    with pytest.raises(DataError, match="Episode 1 has no question"):
        bootstrap_ci([[1.0], []])
    with pytest.raises(ConfigError, match="at least 100"):
        bootstrap_ci([[1.0]], resamples=10)
    with pytest.raises(ConfigError, match="level"):
        bootstrap_ci([[1.0]], level=95)
    with pytest.raises(ConfigError, match="weighting"):
        bootstrap_ci([[1.0]], weighting="token")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="same questions per episode"):
        paired_bootstrap([[1.0, 0.0]], [[1.0]])
    with pytest.raises(DataError, match="paired"):
        mcnemar([True], [True, False])


@pytest.mark.parametrize("dof, quantile", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (5, 2.5706),
                                           (10, 2.2281), (30, 2.0423)])
def test_t_quantiles_match_the_printed_table(dof, quantile):
    assert t_quantile(0.95, dof) == pytest.approx(quantile, abs=1e-4)
    assert t_central(quantile, dof) == pytest.approx(0.95, abs=1e-5)


@settings(max_examples=40, deadline=None)
@given(t=st.floats(0, 50), dof=st.integers(1, 40))
def test_t_central_agrees_with_scipy(t, dof):
    scipy_stats = pytest.importorskip("scipy.stats")
    assert t_central(t, dof) == pytest.approx(1 - 2 * scipy_stats.t.sf(t, dof), abs=1e-10)


def test_t_interval_of_three_seeds():
    # the three seeds of the old controller comparison: t = 2.36 on 2 dof, p = 0.142
    result = t_interval([0.09, 0.01, 0.07])
    assert result.estimate == pytest.approx(0.05667, abs=1e-5) and result.dof == 2
    assert result.p_value == pytest.approx(0.1425, abs=1e-4)
    half = 4.302653 * np.std([0.09, 0.01, 0.07], ddof=1) / np.sqrt(3)
    assert (result.lo, result.hi) == pytest.approx((result.estimate - half, result.estimate + half))


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-1, 1), min_size=2, max_size=10))
def test_t_interval_contains_its_mean_and_p_is_a_probability(values):
    result = t_interval(values)
    assert result.lo <= result.estimate + 1e-12 and result.estimate <= result.hi + 1e-12
    assert 0.0 <= result.p_value <= 1.0
    flipped = t_interval([-v for v in values])
    assert flipped.p_value == pytest.approx(result.p_value) and flipped.estimate == pytest.approx(-result.estimate)


def test_t_interval_of_identical_values_has_no_width_and_refuses_one_value():
    assert t_interval([0.0, 0.0, 0.0]) == TInterval(0.0, 0.0, 0.0, 1.0, 2)
    same = t_interval([0.1, 0.1])
    assert (same.lo, same.hi, same.p_value) == (0.1, 0.1, 0.0)
    with pytest.raises(DataError, match="at least 2"):
        t_interval([0.3])
    with pytest.raises(ConfigError, match="level"):
        t_interval([0.1, 0.2], level=1.5)
    with pytest.raises(ConfigError, match="degree of freedom"):
        t_central(1.0, 0)
