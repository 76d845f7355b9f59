"""agents/training/ray/weight_sync.py: the collective route's protocol (header, announced name/dtype/shape,
order, versions) between a learner process and a rollout worker on a fake vLLM in another process,
over a gloo channel in place of vLLM's NCCL communicator; its checks in-process; the driver's
bookkeeping of when the channel (re)opens; the option's errors.

NCCL and real vLLM workers are not exercised here (no GPU); see docs/DISTRIBUTED.md.
"""

from __future__ import annotations

import multiprocessing
import socket
import sys

import pytest

torch = pytest.importorskip("torch", reason="weight sync needs torch (pip install -e '.[train]')")
pytest.importorskip("transformers", reason="weight sync needs transformers (pip install -e '.[train]')")

from agents.training.ray.config import sync_problems
from agents.training.ray.weight_sync import (  # noqa: E402
    CollectiveSync,
    WeightSyncError,
    check_header,
    manifest,
    receive,
    send,
)

CHANNEL = "tests.support.gloo_channel.GlooChannel"
CONFIG = {"lr": 1e-2, "warmup_steps": 0, "kl_coef": 0.0, "micro_batch_tokens": 64, "temperature": 1.0}
ENV = {"num_documents": 2, "chunk_tokens": 128, "prompt_style": "compact"}


def learner_side(path, port, specs_out, result_file):
    """Learner rank 0: opens the channel, sends version 1, trains one step, sends version 2."""
    from agents.training.grpo import Sample
    from agents.training.ray.learner_group import LearnerSpec, LearnerWorker

    torch.set_num_threads(1)
    worker = LearnerWorker(LearnerSpec(model=path, device="cpu", config=CONFIG), 0, 1)
    specs_out.put(worker.open_weight_channel("127.0.0.1", port, 2, CHANNEL))
    snapshots, counts = [], []
    for version in (1, 2):
        snapshots.append({k: v.clone() for k, v in worker.learner.model.state_dict().items()})
        counts.append(worker.send_weights(version))
        batch = [Sample((3, 4, 5), (6, 7), (-3.0, -3.5), 1.0), Sample((8, 9), (10,), (-2.5,), -1.0)]
        worker.step(batch, 3, 3)  # every response token of the step is forwarded (no zero advantage)
    torch.save({"snapshots": snapshots, "counts": counts}, result_file)


def engine_side(path, port, specs_in, result_file):
    """A rollout worker on a fake vLLM engine: joins as rank 1, receives both updates, plays a chunk."""
    from transformers import AutoTokenizer

    from agents.training.envs import EnvSpec
    from agents.training.ray.dispatch import Chunk, EpisodeSpec
    from agents.training.ray.engine_config import EngineConfig
    from agents.training.ray.workers import RolloutWorker, WorkerConfig
    from tests.support import fake_vllm

    torch.set_num_threads(1)
    sys.modules.update(fake_vllm.modules(AutoTokenizer.from_pretrained(path)))
    config = WorkerConfig(engine=EngineConfig(kind="vllm", model="m", max_new_tokens=8, batch_size=1),
                          env=EnvSpec("AtomMem-Synthetic-v0", ENV))
    worker = RolloutWorker(config)
    worker.open_weight_channel("127.0.0.1", port, 1, 2, CHANNEL)
    specs = specs_in.get(timeout=120)
    model = worker.engine.llm.workers[0].model_runner.model
    received, versions = [], []
    for version in (1, 2):
        versions.append(worker.receive_weights(specs, version))
        received.append(dict(model.weights))
    trajectories = worker.run(Chunk(0, (EpisodeSpec(0, 1, 0),)), greedy=True, seed=0)
    torch.save({"received": received, "versions": versions, "loaded": model.loaded, "specs": specs,
                "events": worker.engine.llm.events, "stamped": [t.version for t in trajectories]}, result_file)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_learner_rank_0_broadcasts_two_versions_into_a_vllm_worker_over_a_channel(tiny_lm_path, tmp_path):
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as Ray actors would be
    learner_out, engine_in = context.Queue(), context.Queue()
    port = free_port()
    learner = context.Process(target=learner_side, args=(tiny_lm_path, port, learner_out, tmp_path / "learner.pt"))
    engine = context.Process(target=engine_side, args=(tiny_lm_path, port, engine_in, tmp_path / "engine.pt"))
    learner.start()
    engine.start()
    engine_in.put(learner_out.get(timeout=180))  # the driver's part: the manifest goes from learner to engines
    learner.join(300)
    engine.join(300)
    assert learner.exitcode == 0 and engine.exitcode == 0
    sent, got = torch.load(tmp_path / "learner.pt"), torch.load(tmp_path / "engine.pt")
    names = list(sent["snapshots"][0])
    assert [spec[0] for spec in got["specs"]] == names and sent["counts"] == [len(names)] * 2
    assert got["loaded"] == names * 2  # one tensor at a time, in the announced order, for each version
    for snapshot, received in zip(sent["snapshots"], got["received"], strict=True):
        assert all(torch.equal(received[k], snapshot[k]) and received[k].dtype == snapshot[k].dtype for k in names)
    assert any(not torch.equal(sent["snapshots"][0][k], sent["snapshots"][1][k]) for k in names)  # version 2 is new
    assert got["versions"] == [1, 2] and got["stamped"] == [2]
    assert got["events"].count("reset_prefix_cache") == 2  # stale KV blocks dropped after each update


class Tape:
    """A channel that records what is broadcast, then plays it back to a receiver."""

    def __init__(self) -> None:
        self.tensors: list = []

    def broadcast(self, tensor, src):
        if src != 0:
            raise AssertionError("only learner rank 0 sends")
        self.tensors.append(tensor.clone())

    def replay(self):
        played = iter(self.tensors)
        return type("Replay", (), {"broadcast": lambda _, tensor, src: tensor.copy_(next(played))})()


def tensors():
    return [("a.weight", torch.randn(3, 2)), ("b.bias", torch.arange(4, dtype=torch.float64))]


def test_a_receiver_announced_another_version_refuses_before_loading_anything():
    tape, specs = Tape(), manifest(tensors())
    assert specs == [("a.weight", "float32", (3, 2)), ("b.bias", "float64", (4,))]
    assert send(tape, tensors(), specs, 7, "cpu") == 2
    loaded = []
    with pytest.raises(WeightSyncError, match="sends weights version 7 .* announced version 8"):
        receive(tape.replay(), specs, 8, loaded.extend, "cpu")
    assert loaded == []
    receive(tape.replay(), specs, 7, loaded.extend, "cpu")
    assert [name for name, _ in loaded] == ["a.weight", "b.bias"] and loaded[1][1].dtype == torch.float64


def test_a_header_with_another_count_is_refused():
    with pytest.raises(WeightSyncError, match=r"\(3 tensors\).*\(2 tensors\)"):
        check_header([1, 3], manifest(tensors()), 1)


def test_the_learner_refuses_to_send_a_tensor_other_than_the_announced_one():
    specs = manifest(tensors())
    changed = [tensors()[0], ("b.bias", torch.zeros(5, dtype=torch.float64))]
    with pytest.raises(WeightSyncError, match="does not match the announced"):
        send(Tape(), changed, specs, 1, "cpu")


@pytest.mark.parametrize("sync, engine, lora_r, message", [
    ("nvlink", "vllm", 0, "choose object-store or collective"),
    ("collective", "hf", 0, "needs --engine vllm"),
    ("collective", "vllm", 8, "sends merged weights"),
])
def test_bad_sync_options_say_what_to_do(sync, engine, lora_r, message):
    assert any(message in line for line in sync_problems(sync, engine, lora_r))
    assert "NCCL cannot join two processes on one GPU" in sync_problems("collective", "vllm", 0, "colocated")[0]
    assert sync_problems("object-store", "hf", 8) == sync_problems("collective", "vllm", 0) == []


@pytest.mark.slow
def test_the_channel_opens_once_and_again_after_a_worker_was_replaced(ray_session):
    calls = []

    class Learners:
        def channel_address(self):
            return "10.0.0.1", 4242

        def open_weight_channel(self, host, port, world_size, factory):
            calls.append(("open", host, port, world_size, factory))
            return ray_session.put([("w", "float32", (2,))])

        def send_weights(self, version):
            calls.append(("send", version))
            return [ray_session.put(2)]

    class Pool:
        restarts = [0, 0]

        def channel_ranks(self):
            return 4  # two engines of tensor parallel size 2

        def open_weight_channel(self, host, port, world_size, factory):
            return [ray_session.put(None) for _ in range(2)]

        def receive_weights(self, specs, version):
            calls.append(("receive", specs, version))
            return [ray_session.put(version) for _ in range(2)]

    pool = Pool()
    sync = CollectiveSync(Learners(), pool, factory="my.Channel")
    sync.push(1)
    sync.push(2)
    pool.restarts = [0, 1]  # a replaced worker cannot join the running group
    sync.push(3)
    opened = ("open", "10.0.0.1", 4242, 5, "my.Channel")
    spec = [("w", "float32", (2,))]
    assert calls == [opened, ("send", 1), ("receive", spec, 1), ("send", 2), ("receive", spec, 2),
                     opened, ("send", 3), ("receive", spec, 3)]


def test_a_replaced_worker_starts_from_weights_fetched_through_the_object_store(monkeypatch):
    import ray

    from agents.training.ray.workers import RayWorkerPool

    pool = RayWorkerPool.__new__(RayWorkerPool)  # the pool's state without starting actors
    pool.actors, pool.restarts, pool.max_restarts = ["old"], [0], 3
    pool.weights, pool.version = None, 5  # collective sync: the updates never passed through the object store
    pool.fetch_weights = lambda: "current-weights-ref"
    spawned = []
    monkeypatch.setattr(ray, "kill", lambda actor, no_restart: None)
    monkeypatch.setattr(pool, "_spawn", lambda i: spawned.append((i, pool.weights, pool.version)) or "new")
    pool._replace(0)
    assert spawned == [(0, "current-weights-ref", 5)] and pool.actors == ["new"] and pool.restarts == [1]
