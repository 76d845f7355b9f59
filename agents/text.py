"""Small text utilities for scripted policies: sentences, entities, keywords, and whole-word mentions."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from itertools import accumulate

_DOCUMENT = re.compile(r"(?:^|\n)Document \d+:\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_CONNECTOR = r"(?:\s+(?:of|the|de|la|von|van|and|for|in)\s+|\s+|-)"
_NAME_WORD = r"(?:[A-Z]\.|[A-Z][\w'’-]*)"
_ENTITY = re.compile(rf"\b(?:{_NAME_WORD}|\d{{3,4}})(?:{_CONNECTOR}(?:{_NAME_WORD}|\d+))*")
_WORD = re.compile(r"[A-Za-z0-9]+")
_STOP = frozenset(
    """a an and are as at be by did do does for from had has have how in is it its of on or that the
    their this to was were what when where which who whom whose why with which both same than than
    more most less first last name named also other""".split()
)
# Capitalized only because they start a sentence: never entities on their own.
_QUESTION_WORDS = frozenset(
    """What Which Who Whom Whose When Where Why How In Is Are Was Were Did Do Does The A An It Its He
    She His Her They Their This That These Those There On At As By For From After Before During Both
    Also Although However""".split()
)


def documents(chunk: str) -> list[tuple[str, str]]:
    """(title, body) of each document in a chunk rendered as ``Document i:\\ntitle\\nbody``.

    The first piece of a chunk may be the tail of a document cut by the chunk boundary; it is
    returned with an empty title.
    """
    pieces = _DOCUMENT.split(chunk)
    out = []
    for index, piece in enumerate(pieces):
        piece = piece.strip()
        if not piece:
            continue
        if index == 0 and not chunk.lstrip().startswith("Document "):
            out.append(("", piece))
            continue
        title, _, body = piece.partition("\n")
        out.append((title.strip(), body.strip()))
    return out


def sentences(text: str) -> list[str]:
    """Split prose into sentences (on end punctuation followed by a capital, and on newlines)."""
    out: list[str] = []
    for line in text.splitlines():
        out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return out


def entities(text: str) -> list[str]:
    """Capitalized spans and years, in order, without sentence-initial question words."""
    found = []
    for match in _ENTITY.finditer(text):
        span = match.group(0).strip(" .-'’")
        words = span.split()
        while words and words[0] in _QUESTION_WORDS:
            words = words[1:]
        span = " ".join(words)
        if span and span not in found:
            found.append(span)
    return found


def keywords(text: str) -> list[str]:
    """Lower-cased content words, in order, without duplicates or stopwords."""
    seen: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word not in _STOP and word not in seen:
            seen.append(word)
    return seen


def mentions(text: str, names: Sequence[str]) -> bool:
    """Whether ``text`` mentions any of ``names`` (case-insensitive, whole words).

    A name is mentioned where its lower-cased form occurs in the lower-cased text padded with a space
    on each side, with no word character (``\\w``) just before or just after it.
    """
    return mentioning([text], names)[0]


def mentioning(texts: Sequence[str], names: Sequence[str]) -> list[bool]:
    """:func:`mentions` for each of ``texts``: what it says of each, in one search per name.

    Scripted policies test a whole chunk's sentences against one list of names. Rather than a regex
    per (name, text) pair, the padded lower-cased texts are joined by newlines and each name is found
    in the join with plain substring search; only its occurrences are looked at one by one (are both
    neighbours non-word characters, and which text holds the occurrence whole). An occurrence across a
    newline between two texts belongs to neither.
    """
    padded = [f" {text.lower()} " for text in texts]
    joined = "\n".join(padded)
    ends = list(accumulate(len(text) + 1 for text in padded))  # where each text's successor starts
    hits = [False] * len(padded)
    unique = dict.fromkeys(name.lower() for name in names if name)
    # A long list (a scratchpad's bridge entities) is first narrowed to the names whose leading word
    # is a whole word of the texts (an occurrence with a non-word character before it starts a word,
    # and the name's leading word ends where the text's does): one regex pass over the texts costs
    # about what 50 substring searches do, and most of a long list is in none of them.
    words = set(_WORD_RUN.findall(joined)) if len(unique) > _MANY_NAMES else None
    for name in unique:
        if words is not None and (lead := _WORD_RUN.match(name)) and lead.group() not in words:
            continue
        for start in _whole_word_starts(name, joined):
            index = bisect_right(ends, start)  # the text the occurrence starts in...
            if start + len(name) < ends[index]:  # ...and ends in, before the newline after it
                hits[index] = True
    return hits


_WORD_RUN = re.compile(r"\w+")
_MANY_NAMES = 64


def _whole_word_starts(name: str, text: str) -> Iterator[int]:
    """Every start of ``name`` in ``text`` between two non-word characters (or the text's ends):
    where ``(?<!\\w)name(?!\\w)`` matches, overlapping occurrences included."""
    start = text.find(name)
    while start >= 0:
        end = start + len(name)
        if not (start and _is_word(text[start - 1])) and not (end < len(text) and _is_word(text[end])):
            yield start
        start = text.find(name, start + 1)


def _is_word(char: str) -> bool:
    """``\\w`` of a str regex: a Unicode letter, digit or numeric character, or the underscore."""
    return char.isalnum() or char == "_"
