"""The reference implementation's answer scoring, re-implemented (ref: verl/utils/reward_score/).

``hotpotqa.compute_score``: the response is lower-cased and cut to its last 300 characters; the
content of its last ``\\boxed{...}`` (or ``\\boxed x``) is the answer, and it matches a gold when both
are equal after MATH-style ``strip_string`` (which removes every space but keeps punctuation and
articles). Without a box the score is 0. ``reward_score/__init__.py`` then takes, from every response
of the episode, the content of its single ``<final_answer>`` tag, or else the whole response if it
contains ``\\boxed{``, scores each against any gold of the episode, and divides the sum by the number
of questions. Which of these rules apply is chosen by a :class:`~atommem_env.protocol.Protocol`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from atommem_env.actions import extract_boxed
from atommem_env.scoring import exact_match

_WINDOW = 300  # characters of the response the reference looks at (its end)
_FINAL_ANSWER = re.compile(r"<final_answer[^>]*>(.*?)</final_answer>", re.DOTALL | re.IGNORECASE)

# strip_string's replacements, in its order (after the newline removal); the empty-string check
# comes before the space removal there, which changes nothing, so it is left out.
_MATH_REPLACEMENTS = (
    ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"), ("\\left", ""), ("\\right", ""),
    ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", ""), ("\\%", ""), (" .", " 0."), ("{.", "{0."),
)


def strip_string(text: str) -> str:
    """The MATH normalization the reference compares with (hendrycks_math's, via hotpotqa.py)."""
    text = text.replace("\n", "")
    for old, new in _MATH_REPLACEMENTS:
        text = text.replace(old, new)
    return text.replace(" ", "")


def reference_boxed(text: str) -> str | None:
    """The answer the reference reads from ``text``, or None (then it scores 0).

    Lower-cased, last 300 characters, then its ``last_boxed_only_string`` + ``remove_boxed``:
    ``\\boxed x`` up to a ``$``, else the last ``\\boxed{...}`` with balanced braces; an ``\\fbox`` or
    an unclosed box fails (the reference's assertion, caught, scores 0).
    """
    window = text[-_WINDOW:].lower()
    if "\\boxed " in window:
        return window.split("\\boxed ")[-1].split("$")[0]
    start = window.rfind("\\boxed")
    if start < 0:
        return None
    depth = 0
    for i in range(start, len(window)):
        depth += {"{": 1, "}": -1}.get(window[i], 0)
        if window[i] == "}" and depth == 0:
            boxed = window[start : i + 1]
            return boxed[len("\\boxed{") : -1] if boxed.startswith("\\boxed{") else None
    return None


def answer_of_response(response: str) -> str | None:
    """What the reference's reward reads from one response (``parse_final_answer``), or None."""
    tags = _FINAL_ANSWER.findall(response)
    if len(tags) == 1:
        return tags[0]
    return response if "\\boxed{" in response else None


def matches(text: str, golds: Sequence[str], *, normalization: str, require_box: bool) -> float:
    """1.0 when the answer in ``text`` equals one of ``golds`` under the given rules, else 0.0.

    Args:
        text: the answer as given (a ``<final_answer>`` content or a whole response).
        golds: the golds it may match (its own question's, or every gold of the episode).
        normalization: ``"math"`` (the reference's ``strip_string``, lower-cased) or ``"squad"`` (ours).
        require_box: read the answer as the reference does (a box is required); else ours (the last
            box, or the plain text).
    """
    answer = reference_boxed(text) if require_box else extract_boxed(text)
    if answer is None:
        return 0.0
    if normalization == "math":
        return float(any(strip_string(answer.lower()) == strip_string(g.lower()) for g in golds))
    return float(any(exact_match(answer, g) for g in golds))
