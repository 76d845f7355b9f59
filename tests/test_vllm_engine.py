"""experiments/vllm_engine.py through a fake vLLM with the same interface (tests/fake_vllm.py): weight
sync through the workers' own load_weights, sleep/wake for colocated placement, a rollout worker on it.

vLLM itself needs a GPU; these tests check what this project asks of vLLM, not vLLM.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="rollout engines need torch (pip install -e '.[train]')")
pytest.importorskip("transformers", reason="rollout engines need transformers (pip install -e '.[train]')")

from experiments.engines import EngineConfig, make_engine  # noqa: E402
from experiments.vllm_engine import EXTENSION, VLLMEngine  # noqa: E402
from tests import fake_vllm  # noqa: E402

OBS = [{"system": "s", "user": "the answer is Paris"}, {"system": "s", "user": "who was born in France"}]


@pytest.fixture
def fake(monkeypatch, tiny_lm_path):
    from transformers import AutoTokenizer

    return fake_vllm.install(monkeypatch, AutoTokenizer.from_pretrained(tiny_lm_path))


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
    assert vllm.llm.events == ["rpc:load_hf_weights", "reset_prefix_cache"]  # stale KV blocks dropped


def test_sleep_frees_the_gpu_between_rollouts_and_weights_load_awake(fake):
    vllm = engine(sleep_mode=True)
    vllm.sleep()
    vllm.sleep()  # idempotent: vLLM would offload twice
    with pytest.raises(RuntimeError, match="call wake"):
        vllm.policy(greedy=False)
    vllm.load_weights({"w": torch.ones(2)})
    assert vllm.llm.events == ["sleep:1", "wake_up", "rpc:load_hf_weights", "reset_prefix_cache", "sleep:1"]
    vllm.wake()
    completions = vllm.policy(greedy=True).act(OBS)
    assert [c.response_ids for c in completions] == [tuple(fake_vllm.RESPONSE_IDS)] * 2


def test_a_rollout_worker_plays_episodes_on_the_vllm_engine(fake):
    from experiments.dispatch import Chunk, EpisodeSpec
    from experiments.ray_workers import RolloutWorker, WorkerConfig

    config = WorkerConfig(
        engine=EngineConfig(kind="vllm", model="m", max_new_tokens=8, batch_size=2),
        env_id="AtomMem-Synthetic-v0", env_kwargs={"num_documents": 2, "chunk_tokens": 128, "prompt_style": "compact"},
    )
    worker = RolloutWorker(config, weights={"w": torch.zeros(1)}, version=2)
    trajectories = worker.run(Chunk(0, (EpisodeSpec(0, 1, 0), EpisodeSpec(1, 2, 1))), greedy=False, seed=0)
    assert [t.version for t in trajectories] == [2, 2]
    turn = trajectories[0].turns[0]
    assert list(turn.response_ids) == fake_vllm.RESPONSE_IDS and turn.logprobs == [-0.5, -1.0, -1.5]
    assert worker.engine.llm.events[0] == "rpc:load_hf_weights"  # the initial weights went in first


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
    from experiments.weight_sync import manifest, send
    from tests.test_weight_sync import Tape

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
