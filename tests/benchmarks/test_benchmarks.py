"""The benchmark scripts' non-timing logic: traces, the batch stores, phase accounting, skips.

No test here asserts a duration: timings depend on the machine and its load.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import replace

import numpy as np
import pytest

from atommem_env.embedders import HashingEmbedder
from atommem_env.errors import ConfigError, DataError
from benchmarks import bench_env, bench_episode, bench_reference, tokenizer_ratio
from benchmarks.common import format_table, summarize
from benchmarks.reference_store import EmbeddingOnly, OurStores, reference_missing, torch_missing
from benchmarks.trace import (
    EmbedClock,
    PlayResult,
    TraceConfig,
    count_mismatches,
    make_trace,
    play,
    resolve_ranks,
)


class GaussianEmbedder:
    """Random unit vectors seeded by the text: similarity scores never tie, so list orders are unique."""

    name, dim = "gaussian", 32

    def embed(self, texts, *, query=False):
        rows = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal(self.dim) for t in texts]
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------ trace
def test_the_trace_has_the_papers_operation_rates_and_is_reproducible():
    config = TraceConfig(episodes=64, turns=30)
    trace = make_trace(config)
    turns = [turn for row in trace for turn in row]
    assert len(trace) == 30 and all(len(row) == 64 for row in trace)
    assert np.mean([len(t.creates) for t in turns]) == pytest.approx(4.0, abs=0.15)
    assert np.mean([t.update is not None for t in turns]) == pytest.approx(0.3, abs=0.03)
    assert np.mean([t.delete is not None for t in turns]) == pytest.approx(0.03, abs=0.01)
    assert all(t.query for t in turns)
    texts = [x for t in turns for x in t.creates] + [t.update[1] for t in turns if t.update]
    assert len(set(texts)) == len(texts), "entry texts are distinct, so finding one by text is unambiguous"
    assert make_trace(config) == trace
    assert make_trace(replace(config, seed=1)) != trace


@pytest.mark.parametrize("update, delete, shown, expected", [
    (2, 5, 6, (2, 5)),
    (8, None, 6, (2, None)),  # ranks beyond the list wrap onto it
    (3, 3, 6, (3, 4)),  # an Update and a Delete never hit the same entry
    (6, 6, 6, (6, 1)),
    (1, 1, 1, (1, None)),
    (4, 2, 0, (None, None)),  # nothing shown: nothing to address
])
def test_resolve_ranks(update, delete, shown, expected):
    assert resolve_ranks(update, delete, shown) == expected


# ---------------------------------------------------------------------------------- batch stores
def test_both_designs_show_the_same_lists_on_a_tie_free_trace():
    pytest.importorskip("faiss", reason=reference_missing())
    pytest.importorskip("langchain_community", reason=reference_missing())
    from benchmarks.reference_store import ReferenceStore

    config = TraceConfig(episodes=4, turns=8, creates=3.0, updates=0.5, deletes=0.3, seed=3)
    trace = make_trace(config)
    reference = ReferenceStore(GaussianEmbedder())
    ours = OurStores(GaussianEmbedder(), config.episodes)
    ref, mine = play(reference, trace), play(ours, trace)
    assert ref.retrieved == mine.retrieved  # episodes never see each other's entries, in either design
    if not torch_missing():  # the reference code's filter (a 0-d tensor) selects the same entries
        assert play(ReferenceStore(GaussianEmbedder(), filter_by="tensor"), trace).retrieved == ref.retrieved
    counts = {op: len(s) for op, s in mine.seconds.items()}
    assert {op: len(s) for op, s in ref.seconds.items()} == counts
    assert {op: len(s) for op, s in mine.cpu_seconds.items()} == counts  # each op timed on both clocks
    assert len(mine.seconds["update"]) > 0 and len(mine.seconds["delete"]) > 0
    assert reference.size() == ours.size()
    assert count_mismatches(ref, mine, GaussianEmbedder()) == 0


def test_the_reference_filter_is_an_int_or_a_tensor():
    pytest.importorskip("faiss", reason=reference_missing())
    pytest.importorskip("langchain_community", reason=reference_missing())
    from benchmarks.reference_store import ReferenceStore

    with pytest.raises(ConfigError, match="filter_by"):
        ReferenceStore(GaussianEmbedder(), filter_by="str")


class RecordingEmbedder(GaussianEmbedder):
    """Remembers every text it embeds, and whether as a query."""

    def __init__(self):
        self.calls = []

    def embed(self, texts, *, query=False):
        self.calls += [(query, text) for text in texts]
        return super().embed(texts, query=query)


def test_the_embedding_only_limit_embeds_what_our_store_embeds():
    config = TraceConfig(episodes=3, turns=10, creates=2.0, updates=0.5, deletes=0.3, seed=2)
    trace = make_trace(config)
    ours, limit = RecordingEmbedder(), RecordingEmbedder()
    mine, bound = play(OurStores(ours, config.episodes), trace), play(EmbeddingOnly(limit, config.episodes), trace)
    assert sorted(limit.calls) == sorted(ours.calls) and limit.calls
    assert {op: len(s) for op, s in bound.seconds.items()} == {op: len(s) for op, s in mine.seconds.items()}
    assert [len(shown) for shown in bound.retrieved] == [len(shown) for shown in mine.retrieved]


def test_the_reference_comparison_reports_every_ratio_per_repeat():
    pytest.importorskip("faiss", reason=reference_missing())
    pytest.importorskip("langchain_community", reason=reference_missing())
    designs = tuple(name for name in bench_reference.DESIGNS if name != "reference_tensor" or not torch_missing())
    row = bench_reference.compare("hashing", episodes=2, turns=3, repeats=2, designs=designs)
    assert all(len(runs) == 2 for runs in row["totals"].values()) and set(row["totals"]) == set(designs)
    assert "ours / embedding_only (cpu_s)" in row["ratios"] and "reference_int / ours (cpu_s)" in row["ratios"]
    assert all(len(r["per_repeat"]) == 2 and r["min"] <= r["median"] <= r["max"] for r in row["ratios"].values())
    assert row["mismatched_lists_reference_int"] == 0


class BusyEmbedder(GaussianEmbedder):
    """Spends at least 3 ms of CPU in every embed call."""

    dim = 64  # the size of the embedder it stands in for below

    def embed(self, texts, *, query=False):
        start = time.process_time()
        while time.process_time() - start < 0.003:
            pass
        return super().embed(texts, query=query)


def test_the_embed_clock_splits_embedding_out_of_each_operation():
    config = TraceConfig(episodes=2, turns=4, creates=2.0, query_changes=0.0, seed=1)
    clock = EmbedClock(HashingEmbedder(dim=64))
    assert clock.sparse and clock.dim == 64  # the store picks its layout from the wrapped embedder
    clock.inner = BusyEmbedder()
    result = play(OurStores(clock, config.episodes), make_trace(config), clock=clock)
    store = result.store_cpu_seconds()
    creates = result.embed_cpu_seconds["create"]
    assert creates and min(creates) >= 0.003  # every Create embeds once
    assert all(0 <= s <= t for s, t in zip(store["create"], result.cpu_seconds["create"], strict=True))
    retrievals = result.embed_cpu_seconds["retrieve"]  # the query never changes: embedded once per episode
    assert sum(e >= 0.003 for e in retrievals) == config.episodes
    assert sum(result.cpu_seconds["create"]) - sum(store["create"]) == pytest.approx(sum(creates))


def test_count_mismatches_compares_scores_not_the_order_of_ties():
    embedder = HashingEmbedder()
    a = PlayResult(queries=["alpha beta"] * 2, retrieved=[["alpha one", "zeta", "eta"], ["alpha one"]])
    tied = PlayResult(queries=a.queries, retrieved=[["alpha one", "eta", "zeta"], ["alpha one"]])
    other = PlayResult(queries=a.queries, retrieved=[["alpha one", "zeta", "eta"], ["beta two three"]])
    assert count_mismatches(a, tied, embedder) == 0
    assert count_mismatches(a, other, embedder) == 1


def test_the_reference_benchmark_skips_with_the_install_command_when_langchain_is_missing(monkeypatch, capsys):
    skipped = "Reference design skipped: pip install -e '.[bench]'."
    monkeypatch.setattr(bench_reference, "reference_missing", lambda: skipped)
    assert bench_reference.main(["--episodes", "2"]) == 0
    assert ".[bench]" in capsys.readouterr().out



def test_the_reference_benchmark_runs_ours_against_the_embedding_alone_without_the_reference(monkeypatch, tmp_path):
    monkeypatch.setattr(bench_reference, "reference_missing", lambda: "not installed")  # not needed for these two
    out = tmp_path / "store.json"
    args = ["--episodes", "2", "--turns", "2", "--repeats", "1", "--designs", "ours", "embedding_only"]
    assert bench_reference.main([*args, "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert set(row["totals"]) == {"ours", "embedding_only"} and "ours / embedding_only (cpu_s)" in row["ratios"]
    with pytest.raises(SystemExit):
        bench_reference.main(["--designs", "embedding_only"])  # every ratio is against ours

# ------------------------------------------------------------------------------------ env bench
def test_env_benchmark_holds_the_store_size_and_times_every_phase():
    fillers = bench_env.filler_texts(40)
    assert len(set(fillers)) == 40
    env = bench_env.make_env("hashing", steps=4)
    row = bench_env.measure(env, size=25, steps=4, fillers=fillers)
    assert row["held_size"] == 25 and len(env.memory) == 25
    assert all(25 < size <= 25 + 4 for size in row["store_size_after_steps"])  # each step created entries
    assert all(row[phase]["n"] == 4 for phase in ("total", "total_cpu", *bench_env.PHASES))
    assert not {"_apply", "_observe", "_info"} & set(vars(env)), "the timers are removed afterwards"
    assert not {"retrieve", "prefetch"} & set(vars(env.memory))


def test_env_benchmark_responses_use_the_papers_tags():
    rng = np.random.default_rng(0)
    chunk = "\n\n".join(f"Document {i}:\nTitle {i}\nFact number {i}." for i in range(1, 9))
    text = bench_env.response(chunk, rng, new_query=True)
    assert text.count("<add_memory>") == 4 and text.count("<update_memory>") == 1
    assert text.count("<update_query>") == 1
    assert "<update_query>" not in bench_env.response(chunk, rng, new_query=False)


def test_env_benchmark_changes_the_query_in_exactly_3_of_10_steps():
    for start in (0, 10, 20):
        assert sum(bench_env.changes_query(step) for step in range(start, start + 10)) == 3


def test_episode_benchmark_skips_clearly_without_the_data(tmp_path, capsys):
    assert bench_episode.main(["--data-dir", str(tmp_path), "--documents", "200"]) == 0
    assert "skipped" in capsys.readouterr().out


# -------------------------------------------------------------------------------- rollout bench
def test_rollout_benchmark_counts_calls_turns_and_splits_prefill_from_decode(tmp_path, one_torch_thread):
    pytest.importorskip("transformers")
    from agents.hf_policy import TransformersPolicy
    from benchmarks import bench_rollout
    from tests.support.tiny_lm import build_tiny_lm

    policy = TransformersPolicy(str(build_tiny_lm(tmp_path)), device="cpu", temperature=1.0, max_new_tokens=3)
    model = policy.model
    sequential = bench_rollout.measure(policy, batch=1, episodes=2, turns=2)
    batched = bench_rollout.measure(policy, batch=2, episodes=2, turns=2)
    assert (sequential["policy_calls"], batched["policy_calls"]) == (4, 2)
    assert sequential["turns"] == batched["turns"] == 4
    for row in (sequential, batched):
        assert row["prompt_tokens"] > 0 and 4 <= row["response_tokens"] <= 12
        assert row["seconds"]["prefill"] > 0 and row["seconds"]["env"] > 0
        assert sum(row["share"].values()) <= 1.0
    assert policy.model is model, "the timing wrapper is removed afterwards"


def test_gpu_benchmark_runs_a_tiny_qwen3_on_cpu_and_skips_without_cuda(tmp_path, capsys, one_torch_thread):
    pytest.importorskip("transformers")
    import json

    import torch

    from benchmarks import bench_gpu

    out = tmp_path / "gpu.json"
    args = ["--shape", "tiny", "--device", "cpu", "--dtype", "float32", "--batch", "2", "--prompt-tokens", "8",
            "--new-tokens", "3", "--json", str(out)]
    assert bench_gpu.main(args) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["batch"], row["prompt_tokens"], row["new_tokens"]) == (2, 8, 3)
    assert row["generated_tokens_per_s"] > 0 and row["learner_tokens_per_s"] > 0
    if not torch.cuda.is_available():
        assert bench_gpu.main(["--shape", "tiny"]) == 0
        assert "skipped: no CUDA device" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ engines bench
@pytest.mark.parametrize("kind", ["hf", "vllm"])
def test_engine_benchmark_times_start_generation_and_a_weight_sync(kind, tiny_lm_path, tmp_path, monkeypatch,
                                                                    one_torch_thread):
    pytest.importorskip("transformers")
    import json

    from transformers import AutoTokenizer

    from benchmarks import bench_engines
    from tests.support import fake_vllm

    if kind == "vllm":  # the fake answers every prompt with the same 3 tokens
        fake_vllm.install(monkeypatch, AutoTokenizer.from_pretrained(tiny_lm_path), device="cpu")
    out = tmp_path / "engines.json"
    argv = ["--engine", kind, "--model", tiny_lm_path, "--batch", "2", "--max-new-tokens", "3", "--repeats", "2",
            "--json", str(out)]
    assert bench_engines.main(argv) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["engine"], row["batch"], row["repeats"]) == (kind, 2, 2)
    assert 4 <= row["generated_tokens"] <= 12 and row["prompt_tokens"] > 2 * 2 * 50  # Synthetic's first prompts
    assert row["generated_tokens_per_s"] > 0 and row["start_s"] > 0 and row["weight_sync_s"] > 0
    if kind == "vllm":
        assert row["generated_tokens"] == 12  # 2 repeats of 2 prompts, 3 tokens each


# ------------------------------------------------------------------------------------- helpers
def test_summarize_reports_microseconds():
    row = summarize([0.001] * 99 + [0.002])
    assert row["n"] == 100 and row["p50_us"] == pytest.approx(1000) and row["p99_us"] > 1000


def test_format_table_aligns_columns():
    text = format_table(["a", "long header"], [["x", 1234.5], ["yy", 0.01234]])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1 and "1,234" in text and "0.0123" in text


def test_tokenizer_ratio_names_a_missing_or_broken_file(tmp_path) -> None:
    with pytest.raises(DataError, match="No HotpotQA dev file at .*pass --data-dir"):
        tokenizer_ratio.load_paragraphs(tmp_path / "missing.json", 10)
    (tmp_path / "broken.json").write_text('[{"context": ', encoding="utf-8")
    with pytest.raises(DataError, match="is not JSON"):
        tokenizer_ratio.load_paragraphs(tmp_path / "broken.json", 10)


def test_batch_embedding_benchmark_compares_both_designs_on_the_same_play():
    from benchmarks import bench_batch_embedding

    row = bench_batch_embedding.measure("hashing", 8, 3, 2, group=4)
    assert row["identical_trajectories"] and [r["design"] for r in row["runs"]] == [
        "per_env", "batched", "batched", "per_env"]  # alternating, ratios inside each repeat
    per_env, batched = row["runs"][0], row["runs"][1]
    assert per_env["turns"] == batched["turns"] == 8 * 3
    assert per_env["embed_calls"] == per_env["embedded_texts"]  # one text per call
    assert batched["embed_calls"] <= 2 * 3  # one per kind (entries, queries) and turn
    assert batched["embedded_texts"] < per_env["embedded_texts"]  # a group's shared entries embedded once
    assert 0 < batched["embed_cpu_s"] and 0 < per_env["embed_cpu_s"]
    assert len(row["ratios"]["embed_cpu_s"]["per_repeat"]) == 2
