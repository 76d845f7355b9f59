"""Shared fixtures: a tiny hand-made episode source, independent of any dataset module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from atommem_env.datasets.base import Episode, render_documents
from atommem_env.env import MemoryQAEnv
from tests.support.datasets import FIXTURES, reset_dataset_state

# No per-example deadlines anywhere: on a loaded CI machine they fail correct code (a timed assertion
# in disguise); performance is measured in benchmarks/, never asserted in tests.
settings.register_profile("atommem", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("atommem")

FACTS = (
    ("Where was Zorblax Quen born?", "Marrowfield", "Zorblax Quen\nZorblax Quen was born in Marrowfield."),
    ("Which company did Ilsa Varn found?", "Tessaline Works", "Ilsa Varn\nIlsa Varn founded Tessaline Works."),
    ("Who directed Glass Harbour?", "Odo Pellam", "Glass Harbour\nGlass Harbour was directed by Odo Pellam."),
)


class ToySource:
    """Episodes of 1–3 questions over 24 short documents; evidence placed by the episode rng."""

    name = "toy"

    def __len__(self) -> int:
        return 6

    def episode(self, index: int, rng: np.random.Generator) -> Episode:
        count = 1 + index % 3
        facts = FACTS[:count]
        fillers = [f"Filler {i}\nThe weather on day {i} was mild and uneventful." for i in range(24 - count)]
        docs = fillers + [doc for _, _, doc in facts]
        docs = [docs[i] for i in rng.permutation(len(docs))]
        return Episode(
            episode_id=f"toy/{index}",
            questions=tuple(q for q, _, _ in facts),
            answers=tuple(a for _, a, _ in facts),
            documents=tuple(docs),
            context=render_documents(docs),
            supporting=tuple((doc,) for _, _, doc in facts),
        )


@pytest.fixture
def toy_source() -> ToySource:
    return ToySource()


@pytest.fixture
def make_env(toy_source):
    """Factory for small toy envs (short chunks so an episode has several)."""

    def _make(**kwargs) -> MemoryQAEnv:
        kwargs.setdefault("chunk_tokens", 60)
        kwargs.setdefault("chunk_overlap", 5)
        return MemoryQAEnv(toy_source, **kwargs)

    return _make


@pytest.fixture
def fixtures_dir() -> Path:
    """The hand-written official-format fixture folder (``tests/fixtures/data``)."""
    return FIXTURES


@pytest.fixture
def fresh_dataset_cache(monkeypatch: pytest.MonkeyPatch):
    """A test without cached corpora and without a data folder from the environment.

    Not autouse: the data test modules apply it to all their tests with ``pytestmark``; the registry
    tests keep their cache, so a real benchmark file is parsed once per session.
    """
    reset_dataset_state(monkeypatch)
    yield
    from atommem_env.datasets import clear_cache

    clear_cache()


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the checkout (or $ATOMMEM_SHARED_DATA), if present."""
    import os

    candidate = Path(os.environ.get("ATOMMEM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    return candidate if candidate.is_dir() else None


@pytest.fixture
def one_torch_thread():
    """Tiny models on one torch thread: a second thread only adds synchronisation, which on a busy
    2-core machine made a learner test 10-20x slower (3.4 s with one thread, 7-71 s with two, measured)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (starting one costs about 10 s here).

    Four logical CPUs on the 2-core machine: tests run at most four single-CPU actors at a time, and
    each test removes its actors and placement groups. Started like a local ray_train.py run, so the
    workers import this checkout's code (the editable install may point at another one).
    """
    ray = pytest.importorskip("ray", reason="Ray tests need ray (pip install -e '.[ray]')")
    from agents.training.ray.cluster import connect

    connect(None, num_cpus=4, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_lm_path(tmp_path_factory):
    """A tiny random Llama folder (tests/support/tiny_lm.py), built once per session."""
    pytest.importorskip("transformers")
    from tests.support.tiny_lm import build_tiny_lm

    return str(build_tiny_lm(tmp_path_factory.mktemp("tiny-lm-session"), max_positions=1024))
