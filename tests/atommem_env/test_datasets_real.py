"""Real benchmark records from the shared data folder (skipped when it is absent).

The folder is ``../shared/data`` beside the checkout, or ``$ATOMMEM_SHARED_DATA``. These tests build
a few episodes per benchmark and document count, not all: the module stays well under 30 seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from atommem_env.datasets import load_benchmark

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("ATOMMEM_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
BENCHMARKS = ("hotpotqa", "2wikimultihopqa", "musique")
SIZES = (200, 400, 800)

pytestmark = [
    pytest.mark.usefixtures("fresh_dataset_cache"),
    pytest.mark.skipif(
        not (SHARED / "hotpotqa").is_dir(),
        reason=f"real benchmark data not found at {SHARED} (set ATOMMEM_SHARED_DATA to the shared/data folder)",
    ),
]


@pytest.mark.parametrize("name", BENCHMARKS)
@pytest.mark.parametrize("num_documents", SIZES)
def test_real_episodes_have_n_unique_documents_and_all_gold(name: str, num_documents: int) -> None:
    source = load_benchmark(name, data_dir=SHARED, num_documents=num_documents)
    assert len(source) > 10
    for index in (0, len(source) // 2, len(source) - 1):
        episode = source.episode(index, np.random.default_rng([7, index]))
        assert len(episode.documents) == num_documents == len(set(episode.documents))
        documents = set(episode.documents)
        start, stop = source.groups[index]
        for sample, gold in zip(source.corpus.samples[start:stop], episode.supporting, strict=True):
            assert gold, f"{sample.id}: no supporting paragraph found"
            assert set(gold) <= documents
            assert set(sample.paragraphs) <= documents
        assert episode.context.count("\n\nDocument ") == num_documents - 1


_FINGERPRINT = """
import hashlib, json, sys
import numpy as np
from atommem_env.datasets import load_benchmark
out = {}
for benchmark in ("hotpotqa", "2wikimultihopqa", "musique"):
    for n in (200, 800):
        source = load_benchmark(benchmark, data_dir=sys.argv[1], num_documents=n)
        for index in (0, 5):
            episode = source.episode(index, np.random.default_rng(123))
            blob = json.dumps([episode.questions, episode.answers, episode.documents, episode.context])
            out[f"{benchmark}/{n}/{index}"] = hashlib.sha256(blob.encode()).hexdigest()
print(json.dumps(out, sort_keys=True))
"""


def test_same_seed_and_index_give_identical_episodes_across_processes() -> None:
    runs = []
    for hash_seed in ("1", "2"):  # different string hashing must not matter
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run([sys.executable, "-c", _FINGERPRINT, str(SHARED)], check=True, capture_output=True,
                                text=True, cwd=REPO, env=env)
        runs.append(json.loads(result.stdout))
    assert runs[0] == runs[1] and len(runs[0]) == 12
    source = load_benchmark("musique", data_dir=SHARED, num_documents=800)
    episode = source.episode(5, np.random.default_rng(123))
    blob = json.dumps([episode.questions, episode.answers, episode.documents, episode.context])
    assert runs[0]["musique/800/5"] == hashlib.sha256(blob.encode()).hexdigest()
