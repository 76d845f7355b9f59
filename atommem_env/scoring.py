"""Answer normalization and the metrics of the paper: exact match, token F1, substring match.

Normalization is SQuAD/HotpotQA style: lower-case, drop punctuation and the articles a/an/the,
collapse whitespace. (The reference used a MATH-style string normalization; SQuAD style is the
standard for these three datasets and is what the published EM numbers of HotpotQA use.)
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)

# What a skipped or missing answer is recorded as; it never matches a gold answer.
NO_ANSWER = ""


def normalize_answer(text: str) -> str:
    """Lower-case, remove punctuation and articles, collapse whitespace."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalized prediction equals the normalized gold (empty never matches)."""
    pred = normalize_answer(prediction)
    return float(bool(pred) and pred == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-level F1 between normalized prediction and gold (SQuAD definition)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def substring_match(prediction: str, gold: str) -> float:
    """1.0 when the normalized gold occurs in the normalized prediction (lenient EM)."""
    pred = normalize_answer(prediction)
    gold_norm = normalize_answer(gold)
    return float(bool(pred) and bool(gold_norm) and f" {gold_norm} " in f" {pred} ")


def best_over_golds(metric, prediction: str, golds: Sequence[str]) -> float:
    """The best score of ``prediction`` against any of ``golds`` (for datasets with aliases)."""
    return max((metric(prediction, g) for g in golds), default=0.0)


@dataclass(frozen=True)
class QuestionScore:
    """Scores of one answer against its own question's gold answers."""

    em: float
    f1: float
    substring_em: float


def score_answer(prediction: str, golds: Sequence[str]) -> QuestionScore:
    """Score one answer against the gold answer(s) of *its own* question."""
    return QuestionScore(
        em=best_over_golds(exact_match, prediction, golds),
        f1=best_over_golds(f1_score, prediction, golds),
        substring_em=best_over_golds(substring_match, prediction, golds),
    )
