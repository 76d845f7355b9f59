"""Statistics users can rely on: bootstrap intervals clustered by episode, paired comparisons, McNemar, and a
t-interval over a few independent runs (training seeds).

The questions of one episode share a context and a memory, so their answers are not independent: an
agent that lost the key paragraph misses every question that needed it. Intervals therefore resample
whole **episodes** (a cluster bootstrap), never single questions; resampling questions would treat
correlated answers as independent evidence and give intervals that are too narrow.

Two point estimates of accuracy, both common:

* **per question** (``"question"``): correct answers / questions, pooled over all episodes; an episode
  with more questions weighs more;
* **per episode** (``"episode"``): the mean over episodes of each episode's fraction correct, as the
  paper's reference evaluation aggregates (and as the episode reward is defined).

Every function is pure and seeded: the same inputs and ``seed`` give the same interval, so tables are
reproducible. numpy only (no scipy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import atan, comb, cos, pi, sin, sqrt
from typing import Literal

import numpy as np

from atommem_env.errors import ConfigError, DataError

Weighting = Literal["question", "episode"]
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
WEIGHTINGS: tuple[tuple[str, Weighting], ...] = (("", "question"), ("episode_", "episode"))  # column prefix, pooling
MIN_RESAMPLES = 100


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval ``[lo, hi]``."""

    estimate: float
    lo: float
    hi: float


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test on paired per-question correctness.

    Attributes:
        a_only: questions that A answered right and B wrong.
        b_only: questions that B answered right and A wrong.
        p_value: two-sided exact p-value (binomial test of ``b_only`` out of the discordant pairs, p = 1/2).
    """

    a_only: int
    b_only: int
    p_value: float


@dataclass(frozen=True)
class TInterval:
    """Mean of a few independent values (e.g. one difference per training seed) with Student's t-interval.

    Attributes:
        estimate: the mean.
        lo, hi: the ``level`` interval ``mean -/+ t * s / sqrt(n)`` (``s``: sample standard deviation).
        p_value: two-sided p-value of the one-sample t-test of mean 0 (1.0 when every value is 0).
        dof: degrees of freedom, ``n - 1``.
    """

    estimate: float
    lo: float
    hi: float
    p_value: float
    dof: int


def point_estimate(values_by_episode: Sequence[Sequence[float]], weighting: Weighting = "question") -> float:
    """Mean of the values, pooled over questions (``"question"``) or averaged per episode (``"episode"``).

    Raises:
        DataError: no episodes, or an episode without values.
    """
    sums, sizes = _cluster_totals(values_by_episode)
    return _statistic(np.ones((1, len(sums))), sums, sizes, weighting)[0]


def bootstrap_ci(values_by_episode: Sequence[Sequence[float]], *, weighting: Weighting = "question",
                 resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of :func:`point_estimate`, resampling whole episodes.

    Args:
        values_by_episode: one sequence of per-question values (e.g. EM 0/1, or F1) per episode. Passing
            each question as its own one-element "episode" gives the naive, unclustered bootstrap.
        weighting: ``"question"`` (pooled) or ``"episode"`` (mean of episode means).
        resamples: bootstrap resamples; at least :data:`MIN_RESAMPLES`.
        seed: seed of the resampling; fixed so that a table is reproducible.
        level: coverage of the interval, in (0, 1).

    Returns:
        The point estimate on the original data and the ``(1 - level) / 2`` and ``(1 + level) / 2``
        quantiles of the resampled estimates, widened if needed to contain the estimate (rounding can
        put it a hair outside when every resample gives the same value).

    Raises:
        ConfigError: ``resamples``, ``level`` or ``weighting`` is out of range.
        DataError: no episodes, or an episode without values.
    """
    sums, sizes = _cluster_totals(values_by_episode)
    counts = _resample_counts(len(sums), resamples, seed, level)
    estimate = _statistic(np.ones((1, len(sums))), sums, sizes, weighting)[0]
    lo, hi = _quantiles(_statistic(counts, sums, sizes, weighting), level)
    return Interval(float(estimate), min(lo, estimate), max(hi, estimate))


def paired_bootstrap(a_by_episode: Sequence[Sequence[float]], b_by_episode: Sequence[Sequence[float]], *,
                     weighting: Weighting = "question", resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED, level: float = 0.95) -> Interval:
    """Interval of the difference B − A of two policies measured on the same episodes.

    Each resample draws one set of episodes and evaluates both policies on it, so the variation that
    the episodes share (easy or hard contexts) cancels out of the difference.

    Args:
        a_by_episode: policy A's per-question values, one sequence per episode.
        b_by_episode: policy B's, in the same episode order and with the same number of questions each.
        weighting, resamples, seed, level: as in :func:`bootstrap_ci`.

    Raises:
        ConfigError: a parameter is out of range.
        DataError: the two sides do not have the same episodes and question counts.
    """
    a_sums, sizes = _cluster_totals(a_by_episode)
    b_sums, b_sizes = _cluster_totals(b_by_episode)
    if not np.array_equal(sizes, b_sizes):
        raise DataError(
            f"Paired data must have the same questions per episode; A has {sizes.tolist()[:10]}, "
            f"B has {b_sizes.tolist()[:10]} (first 10 episodes). Compare runs on identical episodes."
        )
    counts = _resample_counts(len(sizes), resamples, seed, level)
    ones = np.ones((1, len(sizes)))
    estimate = _statistic(ones, b_sums, sizes, weighting)[0] - _statistic(ones, a_sums, sizes, weighting)[0]
    diffs = _statistic(counts, b_sums, sizes, weighting) - _statistic(counts, a_sums, sizes, weighting)
    lo, hi = _quantiles(diffs, level)
    return Interval(float(estimate), min(lo, estimate), max(hi, estimate))


def paired_change(a_by_episode: Sequence[Sequence[float]], b_by_episode: Sequence[Sequence[float]], metric: str, *,
                  weightings: Sequence[tuple[str, Weighting]] = WEIGHTINGS, resamples: int = DEFAULT_RESAMPLES,
                  seed: int = DEFAULT_SEED) -> dict[str, float]:
    """B − A of a per-question ``metric`` pooled per question and per episode (``weightings``), each with its
    paired 95 % interval: ``{metric}_diff``, ``{metric}_diff_lo``, ``{metric}_diff_hi`` and the ``episode_`` ones."""
    change: dict[str, float] = {}
    for prefix, weighting in weightings:
        diff = paired_bootstrap(a_by_episode, b_by_episode, weighting=weighting, resamples=resamples, seed=seed)
        name = f"{prefix}{metric}_diff"
        change[name], change[f"{name}_lo"], change[f"{name}_hi"] = diff.estimate, diff.lo, diff.hi
    return change


def mcnemar_by_episode(a_by_episode: Sequence[Sequence[float]], b_by_episode: Sequence[Sequence[float]]) -> McNemar:
    """:func:`mcnemar` on per-question EM values grouped by episode (a question is right when its EM is 1)."""
    return mcnemar([x >= 0.5 for v in a_by_episode for x in v], [x >= 0.5 for v in b_by_episode for x in v])


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemar:
    """Exact two-sided McNemar test of paired per-question correctness (no scipy needed).

    Under the null hypothesis that A and B are equally accurate, each discordant question (one right,
    the other wrong) is equally likely to favour either, so ``b_only ~ Binomial(a_only + b_only, 1/2)``.
    The p-value doubles the smaller tail (capped at 1), computed exactly with integers. It treats
    questions as independent; use :func:`paired_bootstrap` for an interval that respects episodes.

    Raises:
        DataError: the two sequences differ in length.
    """
    if len(a_correct) != len(b_correct):
        raise DataError(f"McNemar needs paired answers; A has {len(a_correct)}, B has {len(b_correct)}.")
    a_only = sum(1 for a, b in zip(a_correct, b_correct, strict=True) if a and not b)
    b_only = sum(1 for a, b in zip(a_correct, b_correct, strict=True) if b and not a)
    n, k = a_only + b_only, min(a_only, b_only)
    tail = Fraction(sum(comb(n, i) for i in range(k + 1)), 2**n)
    return McNemar(a_only, b_only, float(min(Fraction(1), 2 * tail)))


def t_interval(values: Sequence[float], level: float = 0.95) -> TInterval:
    """Student's t-interval and one-sample t-test (mean 0) of independent ``values``, exact for integer dof.

    Use it across training seeds: each seed's value already averages over many episodes, and what varies
    between seeds is the training itself, which an episode bootstrap of one run cannot see.

    Raises:
        DataError: fewer than two values.
        ConfigError: ``level`` outside (0, 1).
    """
    if len(values) < 2:
        raise DataError(f"A t-interval needs at least 2 independent values (seeds); got {len(values)}.")
    if not 0 < level < 1:
        raise ConfigError(f"level={level} must lie strictly between 0 and 1, e.g. 0.95.")
    x = np.asarray(values, dtype=float)
    dof, mean = len(x) - 1, float(x.mean())
    error = float(x.std(ddof=1)) / sqrt(len(x))
    if error == 0.0:
        return TInterval(mean, mean, mean, 1.0 if mean == 0.0 else 0.0, dof)
    half = t_quantile(level, dof) * error
    return TInterval(mean, mean - half, mean + half, 1.0 - t_central(abs(mean) / error, dof), dof)


def t_central(t: float, dof: int) -> float:
    """P(|T| <= t) for Student's t with ``dof`` >= 1 degrees of freedom (the closed form for integer dof,
    Abramowitz & Stegun 26.7.3-4), so ``1 - t_central(|t|, dof)`` is the two-sided p-value."""
    if dof < 1:
        raise ConfigError(f"dof={dof}: Student's t needs at least 1 degree of freedom.")
    theta = atan(abs(t) / sqrt(dof))
    c2, term, total = cos(theta) ** 2, 1.0, 1.0
    if dof % 2 == 0:  # sin θ (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + ...), dof/2 terms
        for k in range(1, dof // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return sin(theta) * total
    if dof == 1:
        return 2 * theta / pi
    for k in range(1, (dof - 1) // 2):  # (2/π)(θ + sin θ cos θ (1 + 2/3 cos²θ + 2·4/(3·5) cos⁴θ + ...))
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / pi * (theta + sin(theta) * cos(theta) * total)


def t_quantile(level: float, dof: int) -> float:
    """The t with P(|T| <= t) = ``level`` (e.g. 4.303 for 0.95 at 2 dof), by bisection on :func:`t_central`."""
    lo, hi = 0.0, 1.0
    while t_central(hi, dof) < level:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_central(mid, dof) < level else (lo, mid)
    return (lo + hi) / 2


def _cluster_totals(values_by_episode: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    if len(values_by_episode) == 0:
        raise DataError("No episodes to summarize; run at least one episode.")
    sizes = np.array([len(v) for v in values_by_episode], dtype=float)
    if (sizes == 0).any():
        raise DataError(f"Episode {int(np.argmin(sizes))} has no question values; every episode needs one.")
    sums = np.array([float(np.sum(np.asarray(v, dtype=float))) for v in values_by_episode])
    return sums, sizes


def _resample_counts(n: int, resamples: int, seed: int, level: float) -> np.ndarray:
    """How often each of ``n`` episodes is drawn in each resample: shape ``(resamples, n)``."""
    if resamples < MIN_RESAMPLES:
        raise ConfigError(f"resamples={resamples} is too few for a 95 % interval; use at least {MIN_RESAMPLES} "
                          f"(default {DEFAULT_RESAMPLES}).")
    if not 0 < level < 1:
        raise ConfigError(f"level={level} must lie strictly between 0 and 1, e.g. 0.95.")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)


def _statistic(counts: np.ndarray, sums: np.ndarray, sizes: np.ndarray, weighting: Weighting) -> np.ndarray:
    """The estimate for each row of ``counts`` (episode multiplicities)."""
    if weighting == "question":
        return (counts @ sums) / (counts @ sizes)
    if weighting == "episode":
        return (counts @ (sums / sizes)) / counts.sum(axis=1)
    raise ConfigError(f"weighting={weighting!r} is unknown; use 'question' or 'episode'.")


def _quantiles(estimates: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(estimates, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
