"""Small text utilities for scripted policies: sentences, entities and keywords."""

from __future__ import annotations

import re

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


def mentions(text: str, names: list[str]) -> bool:
    """Whether ``text`` mentions any of ``names`` (case-insensitive, whole words)."""
    lowered = f" {text.lower()} "
    return any(re.search(rf"(?<!\w){re.escape(n.lower())}(?!\w)", lowered) for n in names if n)
