"""Helpers shared by the data tests: the fixture folder, cache isolation, synthetic files.

The pytest fixtures built on these (``fixtures_dir``, ``fresh_dataset_cache``) live in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def reset_dataset_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget cached corpora and any data folder named by the environment (ATOMMEM_DATA_DIR)."""
    from atommem_env.datasets import clear_cache

    monkeypatch.delenv("ATOMMEM_DATA_DIR", raising=False)
    clear_cache()


def write_hotpot_file(path: Path, num_questions: int, paragraphs_per_question: int = 10,
                      shared_every: int = 7) -> Path:
    """Write a synthetic HotpotQA-format file; every ``shared_every``-th question reuses a paragraph.

    Shared paragraphs exercise the pool's deduplication and the union of a group's own paragraphs.
    """
    records = []
    for q in range(num_questions):
        context = [[f"Title {q}-{p}", [f"Sentence one of {q}-{p}.", f" Sentence two of {q}-{p}."]]
                   for p in range(paragraphs_per_question)]
        if q and q % shared_every == 0:
            context[-1] = [f"Title {q - 1}-0", [f"Sentence one of {q - 1}-0.", f" Sentence two of {q - 1}-0."]]
        records.append({"_id": f"q{q}", "question": f"Question {q}?", "answer": f"answer {q}",
                        "supporting_facts": [[f"Title {q}-0", 0], [f"Title {q}-1", 1]], "context": context})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records), encoding="utf-8")
    return path
