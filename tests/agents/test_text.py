"""agents/text.py's whole-word matcher says exactly what the regex it replaced (issue #19) said."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents import text as T
from benchmarks.bench_scripted import regex_mentions

# Letters in both cases, digits, word and non-word punctuation, regex metacharacters, whitespace and
# newlines, and Unicode whose lower case or word class is unusual: ß, dotted İ (two characters in lower
# case), final sigma, a combining accent, numerics (² ½ ٣), CJK, a curly apostrophe.
ALPHABET = (string.ascii_letters[:6] + "XYZxyz" + "0129" + "_ -.'’:;,!?" + "()[]{}*+^$|\\"
            + " \n\t" + "éÉßİıΣσςΑ\u0301²½٣日本")
# A few characters drawn often make names collide with texts, overlap and sit beside each other.
CHARS = st.sampled_from("aA -\n_") | st.sampled_from(ALPHABET) | st.characters(codec="utf-8")
TEXTS = st.lists(st.text(CHARS, max_size=30), max_size=6)


@st.composite
def texts_and_names(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """Texts, and names that are partly fresh strings and partly slices of the texts, case changed."""
    texts = draw(TEXTS)
    names = draw(st.lists(st.text(CHARS, max_size=6), max_size=4))
    for text in texts:
        for _ in range(draw(st.integers(0, 3))):
            start = draw(st.integers(0, len(text)))
            piece = text[start:draw(st.integers(start, len(text)))]
            names.append(draw(st.sampled_from([piece, piece.upper(), piece.swapcase(), piece.title()])))
    return texts, draw(st.permutations(names))


# 70 absent names push a list past the many-names threshold, where a first-word filter runs first.
@pytest.mark.parametrize("padding", [[], [f"qq{i}" for i in range(70)]], ids=["few-names", "many-names"])
@given(texts_and_names())
def test_mentioning_says_what_the_regex_said_of_each_text(padding, case):
    texts, names = case
    names = names + padding
    assert T.mentioning(texts, names) == [regex_mentions(text, names) for text in texts]
    assert [T.mentions(text, names) for text in texts] == [regex_mentions(text, names) for text in texts]


@pytest.mark.parametrize(("text", "names", "expected"), [
    ("Born in New York City.", ["new york"], True),
    ("The New Yorker", ["New York"], False),  # a word continues after the name
    ("C++ and C#", ["c++"], True),  # regex metacharacters are literal
    ("a.b", ["a?b"], False),
    ("Casablanca (film)", ["(film)"], True),
    ("aaa", ["aa"], False),  # every occurrence has a letter beside it
    ("a a a", ["a a"], True),  # overlapping occurrences
    ("xa-a-a", ["a-a"], True),  # the first has a letter before it, the one overlapping it does not
    ("Glass Harbour", ["Harbour", "", "Glass"], True),
    ("Glass Harbour", [""], False),
    ("x", [" x"], True),  # the text is padded with a space on each side
    ("ΟΔΟΣ", ["οδος"], True),  # final sigma: lower-cased in context, as the regex matcher did
    ("İstanbul", ["i̇stanbul"], True),
    ("snake_case", ["snake"], False),  # the underscore is a word character
    ("x²", ["x"], False),  # so is a superscript digit
])
def test_mentions_examples(text, names, expected):
    assert T.mentions(text, names) is expected is regex_mentions(text, names)


def test_an_occurrence_across_two_texts_belongs_to_neither():
    """The texts are searched joined by newlines; a name with a newline must not match across two."""
    names = ["end \n start", "end"]
    assert T.mentioning(["the end", "start here"], names[:1]) == [False, False]
    assert T.mentioning(["the end", "start here"], names) == [True, False]
    assert T.mentioning(["the end", "x"], ["end \n", "\n"]) == [False, False]
    assert T.mentioning([], names) == []
