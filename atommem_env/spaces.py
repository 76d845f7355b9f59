"""An honest Unicode text space.

gymnasium's ``Text`` space only admits characters from a fixed charset (alphanumerics by default), so
ordinary prose with punctuation, newlines or accents would fall outside it. ``UnicodeText`` admits any
``str`` up to ``max_length`` characters, which is what an LLM's prompt and response really are.
"""

from __future__ import annotations

from typing import Any

from gymnasium.spaces import Space

# Sampled characters: ASCII letters, digits, punctuation, whitespace and a few non-ASCII letters, plus
# tag fragments so random actions sometimes exercise the action parser rather than always missing it.
_SAMPLE_ALPHABET = tuple(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n\t.,;:!?'\"()[]{}<>/\\-_éüßøжλ中文"
)
_SAMPLE_FRAGMENTS = (
    "<add_memory>", "</add_memory>", "<update_memory>", "</update_memory>", "<update_query>",
    "</update_query>", "<modify_memory>", "</modify_memory>", "<delete_memory>", "</delete_memory>",
    "<final_answer>", "</final_answer>", "<think>", "</think>", "Memory 1", "Memory 2: ", "\\boxed{",
)


class UnicodeText(Space[str]):
    """Any Python string of at most ``max_length`` characters.

    Args:
        max_length: upper bound on ``len(x)``; ``None`` means unbounded.
        sample_length: longest string that ``sample()`` produces.
        seed: optional seed for the space's own RNG.
    """

    def __init__(
        self, max_length: int | None = None, *, sample_length: int = 64, seed: int | None = None
    ) -> None:
        if max_length is not None and max_length < 0:
            raise ValueError(f"max_length={max_length} must be >= 0 or None.")
        self.max_length = max_length
        self.sample_length = sample_length if max_length is None else min(sample_length, max_length)
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Text has no fixed-size numpy form."""
        return False

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a string within ``max_length``."""
        return isinstance(x, str) and (self.max_length is None or len(x) <= self.max_length)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random string mixing characters and action-tag fragments (``mask`` is unsupported)."""
        if mask is not None or probability is not None:
            raise ValueError("UnicodeText.sample does not support mask or probability.")
        pieces: list[str] = []
        length = int(self.np_random.integers(0, self.sample_length + 1))
        while sum(map(len, pieces)) < length:
            if self.np_random.random() < 0.15:
                pieces.append(_SAMPLE_FRAGMENTS[self.np_random.integers(len(_SAMPLE_FRAGMENTS))])
            else:
                pieces.append(_SAMPLE_ALPHABET[self.np_random.integers(len(_SAMPLE_ALPHABET))])
        return "".join(pieces)[:length]

    def to_jsonable(self, sample_n: Any) -> list[str]:
        """Samples as a JSON list of strings."""
        return list(sample_n)

    def from_jsonable(self, sample_n: list[str]) -> list[str]:
        """Samples back from a JSON list of strings."""
        return list(sample_n)

    def __repr__(self) -> str:
        return f"UnicodeText(max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnicodeText) and other.max_length == self.max_length

