"""atommem_env/embedders/feature_codes.py: a batch's feature slots, found and hashed for all texts at
once, are exactly the one-text path's, and so are the vectors, bit for bit."""

from __future__ import annotations

import zlib
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from atommem_env.embedders import HashingEmbedder
from atommem_env.embedders.feature_codes import FeatureCodes, zero_shift
from atommem_env.embedders.hashing import _STOPWORDS

_words = st.sampled_from(["Orin", "Vale", "the", "A", "a", "of", "É", "ß", "ΣΟΦΟΣ", "İstanbul", "日本語", "x_y", "1987",
                          "naïve", "l" * 70, "é" * 40, "__", "ﬁ"])
_separators = st.sampled_from([" ", "  ", ", ", ".", "\n", "\t", "!?", "—", "\x1c", "\u00a0", "'"])
_phrases = st.lists(st.tuples(_words, _separators), max_size=25).map(lambda pairs: "".join(w + s for w, s in pairs))
_texts = (_phrases | st.text(max_size=80) | st.text(alphabet=st.characters(codec="ascii"), max_size=80)
          | st.sampled_from(["", " ", "...", "!!! ?? ;", "A A A", "the of and", "word " * 500, "z" * 5000]))


def one_text_codes(embedder: HashingEmbedder, texts: list[str]) -> list[Counter[int]]:
    """The one-text path's features as signed slots, ``±(index + 1)``."""
    dim = embedder.dim
    return [Counter(cell if cell <= dim else dim - cell for cell in embedder._cells(text)) for text in texts]


def batch_codes(codes: FeatureCodes, texts: list[str]) -> list[Counter[int]]:
    signed, text = codes(texts)
    assert signed.dtype == np.int64 and len(signed) == len(text)
    per_text: list[Counter[int]] = [Counter() for _ in texts]
    for code, index in zip(signed.tolist(), text.tolist(), strict=True):
        per_text[index][code] += 1
    return per_text


@settings(max_examples=150, deadline=None)
@given(st.lists(_texts, min_size=1, max_size=30), st.sampled_from([8, 64, 1000, 1024]), st.booleans())
def test_batch_slots_are_the_one_text_slots(texts, dim, bigrams):
    embedder = HashingEmbedder(dim=dim, bigrams=bigrams)
    assert batch_codes(FeatureCodes(dim, bigrams, _STOPWORDS), texts) == one_text_codes(embedder, texts)


@settings(max_examples=60, deadline=None)
@given(st.lists(_texts, min_size=8, max_size=40), st.sampled_from([8, 64, 1024]), st.booleans())
def test_batched_vectors_are_one_text_vectors_bit_for_bit(texts, dim, bigrams):
    together = HashingEmbedder(dim=dim, bigrams=bigrams).embed(texts)  # 8 or more: the batched path
    alone = np.concatenate([HashingEmbedder(dim=dim, bigrams=bigrams).embed([t]) for t in texts])
    assert np.array_equal(together.view(np.int32), alone.view(np.int32))


def test_the_vocabulary_is_emptied_when_full_and_slots_stay_the_same():
    codes = FeatureCodes(64, True, _STOPWORDS, max_words=5)
    embedder = HashingEmbedder(dim=64)
    for texts in (["alpha beta gamma", "delta epsilon"], ["zeta eta theta iota", "alpha kappa"], ["", "alpha"]):
        assert batch_codes(codes, texts) == one_text_codes(embedder, texts)
    assert len(codes._ids) <= 5 + 7


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=20), st.binary(max_size=300))
def test_zero_shift_appends_bytes_to_a_crc(head, tail):
    # crc32(head + tail) = Z_len(tail)(crc32(head)) ^ crc32(tail): how a bigram's CRC is found.
    shifted = zero_shift(np.array([zlib.crc32(head)], dtype=np.uint32), np.array([len(tail)]))
    assert int(shifted[0]) ^ zlib.crc32(tail) == zlib.crc32(head + tail)
