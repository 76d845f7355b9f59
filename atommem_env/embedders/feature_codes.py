"""The hashing embedder's feature slots for many texts at once, with one regex call and numpy.

:class:`~atommem_env.embedders.HashingEmbedder` hashes each text's words (stopwords dropped) and word
bigrams with CRC32. Text by text, that is Python work per feature (the regex, the stopword filter, a
string per bigram, a slot lookup): about 15 us of a text's 22 us in a batch of envs' turn
(docs/PERFORMANCE.md, "Embedding a batch of envs together"). Here a batch's texts are lower-cased one
by one (as the one-text path does: ``str.lower`` depends on context, e.g. a final sigma) and joined by
a separator word that no lower-cased text contains, so one ``findall`` splits them all; each word is
looked up in a vocabulary (one C-level dictionary lookup a word) that holds its CRC32 and UTF-8
length, and the rest is numpy over all words at once. A bigram's CRC is not computed from its string:
CRC32 is affine, ``crc(a + b) = Z_len(b)(crc(a)) ^ crc(b)`` with ``Z_n`` the linear map of appending
``n`` zero bytes, so ``crc("a b")`` is ``Z_len(b)(crc("a "))`` XOR ``crc("b")``, four table lookups
(:func:`zero_shift`). The slots are therefore exactly the one-text path's (a test compares them on
arbitrary Unicode text).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from functools import cache
from itertools import repeat

import numpy as np

#: Joins the lower-cased texts: a word (so ``findall`` returns it as a boundary) that no lower-cased
#: text contains, since ``str.lower`` maps every "A" to "a" and no character lowers to an "A".
SEPARATOR_WORD = "A"
_SEPARATOR = f" {SEPARATOR_WORD} "
_WORD = re.compile(r"\w+")


#: ``Z_n`` is applied in steps of at most this many bytes (longer words take several steps).
_LONGEST_STEP = 63


@cache
def _zero_shift_tables() -> np.ndarray:
    """``tables[n, i, b]``, flattened: ``Z_n`` of byte value ``b`` in byte ``i`` of the register, for ``n`` up to
    :data:`_LONGEST_STEP`; built from 32 basis values per ``n``, since ``Z_n`` is linear over GF(2)."""
    lengths = range(_LONGEST_STEP + 1)
    basis = np.array([[zlib.crc32(bytes(n), 1 << bit) ^ zlib.crc32(bytes(n), 0) for bit in range(32)]
                      for n in lengths], dtype=np.uint32).reshape(len(lengths), 4, 1, 8)  # (n, byte, -, bit)
    bits = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(bool)  # (byte value, bit)
    return np.bitwise_xor.reduce(np.where(bits, basis, np.uint32(0)), axis=3).ravel()  # flat: one take each


def zero_shift(crcs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``Z_lengths[i](crcs[i])`` for every ``i``: the CRC32 register ``crcs[i]`` after ``lengths[i]``
    zero bytes, without its final inversion (uint32)."""
    tables, left = _zero_shift_tables(), lengths
    while True:
        step = np.minimum(left, _LONGEST_STEP)
        base = step * 1024  # tables[n, i, b] sits at 1024 n + 256 i + b
        crcs = (tables.take(base + (crcs & 0xFF)) ^ tables.take(base + (256 + ((crcs >> 8) & 0xFF)))
                ^ tables.take(base + (512 + ((crcs >> 16) & 0xFF))) ^ tables.take(base + (768 + (crcs >> 24))))
        left = left - step
        if not left.any():
            return crcs


def words_of(lowered: Sequence[str], ascii: bool) -> list[str]:
    """The words (``\\w+``) of the lower-cased texts ``lowered``, texts separated by the separator word;
    ``ascii``: all of them are ASCII, where ``\\w`` is ``[0-9A-Za-z_]`` and bytes.translate and split
    find the words several times faster than the regex."""
    joined = _SEPARATOR.join(lowered)
    if ascii:
        return joined.encode("ascii").translate(_NOT_WORD_TO_SPACE).decode("ascii").split()
    return _WORD.findall(joined)


#: ASCII bytes that are not ``\w`` (everything but ``[0-9A-Za-z_]``) become spaces.
_NOT_WORD_TO_SPACE = bytes(b if chr(b).isalnum() or b == ord("_") else ord(" ") for b in range(128)) + bytes(128)


class FeatureCodes:
    """Signed slots (``±(index + 1)``) of the features of many texts, and the text each belongs to.

    Args:
        dim: the embedder's vector size.
        bigrams: whether adjacent word pairs are features too.
        stopwords: words dropped before features are formed.
        max_words: the vocabulary is emptied when it has reached this size (it is a pure speed-up).
    """

    def __init__(self, dim: int, bigrams: bool, stopwords: frozenset[str], max_words: int = 1_000_000) -> None:
        self.dim, self.bigrams, self._stopwords, self._max_words = dim, bigrams, stopwords, max_words
        self._clear()

    def _clear(self) -> None:
        self._ids: dict[str, int] = {SEPARATOR_WORD: 0}
        self._crc = np.zeros(1024, dtype=np.uint32)  # crc32 of the word's UTF-8 bytes
        self._crc_space = np.zeros(1024, dtype=np.uint32)  # crc32 of the word and a space
        self._length = np.zeros(1024, dtype=np.int64)  # the word's UTF-8 bytes
        self._dropped = np.zeros(1024, dtype=bool)  # a stopword or the separator
        self._dropped[0] = True

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every feature's signed slot (int64) and its text's index."""
        lowered = [text.lower() for text in texts]
        ascii = [text.isascii() for text in lowered]
        if all(ascii) or not any(ascii):
            return self._codes(words_of(lowered, ascii[0] if ascii else True))
        parts = [np.flatnonzero(ascii), np.flatnonzero(np.logical_not(ascii))]  # each its own way
        codes = [self._codes(words_of([lowered[i] for i in part.tolist()], kind))
                 for part, kind in zip(parts, (True, False), strict=True)]
        return (np.concatenate([signed for signed, _ in codes]),
                np.concatenate([part[text] for part, (_, text) in zip(parts, codes, strict=True)]))

    def _codes(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The signed slots of ``words`` (texts separated by the separator word), and their texts."""
        ids = self._word_ids(words)
        text = np.cumsum(ids == 0)  # the separators before each word: its text's index
        kept = ~self._dropped[ids]
        ids, text = ids[kept], text[kept]
        crcs = self._crc[ids]
        if self.bigrams and len(ids) > 1:
            pair = text[1:] == text[:-1]  # adjacent kept words of one text
            first, second = ids[:-1][pair], ids[1:][pair]
            pair_crcs = zero_shift(self._crc_space[first], self._length[second]) ^ self._crc[second]
            crcs, text = np.concatenate((crcs, pair_crcs)), np.concatenate((text, text[1:][pair]))
        slots = (crcs % self.dim).astype(np.int64) + 1
        return np.where(crcs >> 31, slots, -slots), text

    def _word_ids(self, words: list[str]) -> np.ndarray:
        if len(self._ids) >= self._max_words:
            self._clear()
        ids = np.fromiter(map(self._ids.get, words, repeat(-1)), dtype=np.int64, count=len(words))
        for i in np.flatnonzero(ids < 0).tolist():  # words not seen before (a word may recur)
            word = words[i]
            ids[i] = self._ids[word] if word in self._ids else self._add(word)
        return ids

    def _add(self, word: str) -> int:
        index = len(self._ids)
        if index == len(self._crc):
            for name in ("_crc", "_crc_space", "_length", "_dropped"):
                setattr(self, name, np.resize(getattr(self, name), 2 * index))
        encoded = word.encode("utf-8")
        self._crc[index] = zlib.crc32(encoded)
        self._crc_space[index] = zlib.crc32(b" ", zlib.crc32(encoded))
        self._length[index] = len(encoded)
        self._dropped[index] = word in self._stopwords
        self._ids[word] = index
        return index
