"""agents/training/ray/workers.py and embedding_service.py: a rollout worker in-process, the worker pool on
Ray (a worker killed mid-step: every episode exactly once), the per-node embedding service."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("torch", reason="rollout workers need torch (pip install -e '.[train]')")
pytest.importorskip("transformers", reason="rollout workers need transformers (pip install -e '.[train]')")

from agents.training.envs import EnvSpec
from agents.training.ray.dispatch import Chunk, EpisodeSpec  # noqa: E402
from agents.training.ray.engine_config import EngineConfig  # noqa: E402
from agents.training.ray.workers import RolloutWorker, WorkerConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

ENV_KWARGS = {"num_documents": 2, "chunk_tokens": 128, "prompt_style": "compact"}


def config(path, batch_size=2):
    engine = EngineConfig(model=path, max_new_tokens=4, batch_size=batch_size, temperature=1.0, top_p=1.0)
    return WorkerConfig(engine=engine, env=EnvSpec("AtomMem-Synthetic-v0", ENV_KWARGS))


def chunk(n, number=0):
    return Chunk(number, tuple(EpisodeSpec(uid=i, seed=10 + i, index=i % 3) for i in range(n)))


def tokens(trajectories):
    return [[turn.response_ids for turn in t.turns] for t in trajectories]


def test_a_worker_returns_plain_trajectories_stamped_with_its_weights_version(tiny_lm_path):
    worker = RolloutWorker(config(tiny_lm_path), version=3)
    trajectories = worker.run(chunk(2), greedy=False, seed=7)
    assert [t.index for t in trajectories] == [0, 1] and {t.version for t in trajectories} == {3}
    turn = trajectories[0].turns[0]
    assert turn.prompt_ids and turn.response_ids and len(turn.logprobs) == len(turn.response_ids)
    assert tokens(worker.run(chunk(2), greedy=False, seed=7)) == tokens(trajectories)  # the chunk's seed decides


def test_new_weights_change_what_the_worker_generates(tiny_lm_path):
    import torch

    worker = RolloutWorker(config(tiny_lm_path))
    before = tokens(worker.run(chunk(2), greedy=True, seed=0))
    weights = {k: v + 0.5 * torch.randn_like(v) for k, v in worker.engine.model.state_dict().items()}
    assert worker.set_weights(weights, version=1) == 1
    after = worker.run(chunk(2), greedy=True, seed=0)
    assert tokens(after) != before and {t.version for t in after} == {1}
    with pytest.raises(RuntimeError, match="Missing key"):
        worker.set_weights({"nope": torch.zeros(1)}, version=2)


# --- on Ray -----------------------------------------------------------------------------------------


@pytest.fixture
def pool(ray_session, tiny_lm_path):
    from agents.training.ray.cluster import create_placement_groups
    from agents.training.ray.placement import plan_placement
    from agents.training.ray.workers import RayWorkerPool

    plan = plan_placement(0, rollout_workers=2, num_learners=1)
    groups = create_placement_groups(plan, timeout_s=60)
    pool = RayWorkerPool(config(tiny_lm_path), plan, groups, None, 0, max_restarts=2)
    yield pool
    pool.shutdown()
    for group in groups:
        ray_session.util.remove_placement_group(group)


@pytest.mark.slow
def test_a_worker_killed_mid_step_is_replaced_and_every_episode_counts_once(pool, ray_session, monkeypatch):
    import torch

    # Weights of version 4 by object ref: the replacement worker must start from them too.
    state = RolloutWorker(config(pool.config.engine.model)).engine.model.state_dict()
    pool.set_weights(ray_session.put({k: v + 0.3 * torch.randn_like(v) for k, v in state.items()}), version=4)
    specs = [EpisodeSpec(uid=i, seed=100 + i, index=i % 3) for i in range(6)]
    clean, stats = pool.run(specs, greedy=False, seed=5)
    assert stats.restarts == 0 and [t.seed for t in clean] == [s.seed for s in specs]
    assert {t.version for t in clean} == {4}

    real_wait, victim = ray_session.wait, pool.actors[0]
    pid = ray_session.get(victim.pid.remote())

    def wait_after_killing(*args, **kwargs):
        if pool.actors[0] is victim:  # the first wait of the step: worker 0 holds a chunk in flight
            ray_session.kill(victim, no_restart=True)
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(ray_session, "wait", wait_after_killing)
    again, stats = pool.run(specs, greedy=False, seed=5)
    assert stats.restarts == 1 and stats.requeued >= 1 and pool.pids()[0] != pid
    assert [t.seed for t in again] == [s.seed for s in specs]  # each episode once, in order
    assert tokens(again) == tokens(clean) and {t.version for t in again} == {4}  # same weights, same chunk seeds
    pool.sleep()
    pool.wake()  # no-ops on CPU, but they reach every worker


def test_the_embedding_service_gives_the_local_embedders_vectors(ray_session):
    from agents.training.ray.embedding_service import EmbeddingService, ServiceEmbedder, needs_service
    from atommem_env.embedders import HashingEmbedder

    service = ray_session.remote(EmbeddingService).remote("hashing:64")
    try:
        client = ServiceEmbedder.connect(service)
        texts = ["Orin Vale was born in Quenhaven.", "", "Sagusk Tides director"]
        local = HashingEmbedder(dim=64)
        assert client.name == "hashing" and client.dim == 64
        np.testing.assert_array_equal(client.embed(texts), local.embed(texts))
        np.testing.assert_array_equal(client.embed(texts, query=True), local.embed(texts, query=True))
        with pytest.raises(Exception, match="wrap it in a list"):
            client.embed("one string")
        # An env whose store embeds through the service plays exactly like one with its own embedder.
        from agents.scripted import HeuristicMemoryPolicy
        from agents.training.rollout import rollout

        class Turns(HeuristicMemoryPolicy):
            count = 0

            def act(self, observations):
                Turns.count += 1
                return super().act(observations)

        def play(embedder):
            make = lambda: gym.make("AtomMem-Synthetic-v0", embedder=embedder, **ENV_KWARGS)  # noqa: E731
            return [t.to_json() for t in rollout(make, Turns(), [1, 2, 3, 4], batch_size=4)]

        # As in a rollout worker, the envs share the client: a turn of all of them is one request per kind.
        requests = []
        send = client._embed_new
        client._embed_new = lambda texts, query: (requests.append(len(texts)), send(texts, query))[1]
        assert play(client) == play(HashingEmbedder(dim=64))
        turns = Turns.count // 2  # per play: both plays took the same turns
        assert 0 < len(requests) <= 2 * turns
    finally:
        ray_session.kill(service)
    assert needs_service("minilm") and needs_service("st:some/model")
    assert not needs_service("hashing") and not needs_service("openai:http://h/v1#m") and not needs_service(None)


@pytest.mark.slow
def test_a_worker_killed_by_rays_memory_monitor_is_replaced_too(pool, ray_session, monkeypatch):
    from ray.exceptions import OutOfMemoryError

    pid = pool.pids()[0]
    state = ray_session.put(RolloutWorker(config(pool.config.engine.model)).engine.model.state_dict())
    real_get, calls = ray_session.get, []

    def get(ref, *args, **kwargs):  # the first wait is worker 0's: its actor was killed to save memory
        calls.append(ref)
        if len(calls) == 1:
            raise OutOfMemoryError("1 worker(s) were killed due to the node running low on memory.")
        return real_get(ref, *args, **kwargs)

    monkeypatch.setattr(ray_session, "get", get)
    pool.set_weights(state, version=7)  # OutOfMemoryError is not a RayActorError: it crashed the run
    monkeypatch.undo()
    assert pool.restarts[0] == 1 and pool.pids()[0] != pid  # replaced, starting from the new weights
    played, _ = pool.run([EpisodeSpec(uid=i, seed=i, index=i) for i in range(4)], greedy=True, seed=0)
    assert {t.version for t in played} == {7}


@pytest.mark.slow
def test_a_worker_stopped_mid_rollout_is_caught_by_its_deadline(pool, ray_session, monkeypatch):
    """SIGSTOP once stalled ray_train forever: now the chunk's deadline gives the worker up, and it is
    killed, replaced, and its episodes re-run exactly once."""
    import os
    import signal

    from agents.training.ray.deadline import ChunkDeadline

    startup_s = 3600.0
    pool.deadline = ChunkDeadline(startup_s=startup_s, floor_s=2, slack=5)
    specs = [EpisodeSpec(uid=i, seed=200 + i, index=i % 3) for i in range(6)]
    clean, stats = pool.run(specs, greedy=True, seed=3)  # measures the speed the deadline comes from
    assert stats.hung == 0 and pool.deadline.tokens_per_s is not None
    n = pool.config.engine.batch_size
    measured = 2 + 5 * n * pool.deadline.tokens_per_episode / pool.deadline.tokens_per_s
    # The measured deadline (how long it is depends on the machine's load), no longer the start-up one.
    assert pool.deadline.seconds(n) == pytest.approx(measured) and measured < startup_s

    real_wait, victim = ray_session.wait, pool.actors[0]
    pid = ray_session.get(victim.pid.remote())

    def wait_after_stopping(*args, **kwargs):
        if pool.actors[0] is victim:  # worker 0 holds a chunk in flight: freeze it
            os.kill(pid, signal.SIGSTOP)
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(ray_session, "wait", wait_after_stopping)
    again, stats = pool.run(specs, greedy=True, seed=3)
    assert stats.hung == 1 and stats.restarts == 1 and stats.requeued >= 1
    assert pool.pids()[0] != pid
    assert [t.seed for t in again] == [s.seed for s in specs] and tokens(again) == tokens(clean)


@pytest.mark.slow
def test_a_worker_hung_while_loading_weights_is_replaced_and_counted(pool, ray_session):
    """Outside a rollout too: a stopped worker does not stall set_weights, and the restart is counted."""
    import os
    import signal

    from agents.training.ray.deadline import ChunkDeadline

    pool.deadline = ChunkDeadline(fixed_s=5)
    pid = pool.pids()[1]
    os.kill(pid, signal.SIGSTOP)
    state = ray_session.put(RolloutWorker(config(pool.config.engine.model)).engine.model.state_dict())
    pool.set_weights(state, version=2)
    assert pool.restarts_outside_rollout == 1 and pool.restarts[1] == 1 and pool.pids()[1] != pid
    played, _ = pool.run([EpisodeSpec(uid=i, seed=i, index=i) for i in range(2)], greedy=True, seed=0)
    assert {t.version for t in played} == {2}


@pytest.mark.slow
def test_a_worker_that_cannot_start_stops_the_run_at_once_without_restarts(ray_session, tmp_path):
    """A fault at start-up (here a model folder that does not exist; on a node, a missing package) repeats in
    every replacement: the pool says what it was instead of retrying and blaming memory."""
    from agents.training.ray.cluster import create_placement_groups
    from agents.training.ray.placement import plan_placement
    from agents.training.ray.workers import RayWorkerPool, WorkerLost

    plan = plan_placement(0, rollout_workers=1, num_learners=1)
    groups = create_placement_groups(plan, timeout_s=60)
    pool = RayWorkerPool(config(str(tmp_path / "no-such-model")), plan, groups, None, 0, max_restarts=3)
    try:
        with pytest.raises(WorkerLost, match=r"could not start \(it failed to start: .*no-such-model"):
            pool.run([EpisodeSpec(0, 1, 0)], greedy=True, seed=0)
        assert pool.restarts == [0]
    finally:
        pool.shutdown()
        for group in groups:
            ray_session.util.remove_placement_group(group)


@pytest.mark.slow
def test_what_the_pool_watches_stops_a_rollout_in_progress(pool):
    """The driver watches the learners while the workers play: what the watch raises ends the rollout."""
    calls = []

    def watch():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a learner died")

    with pytest.raises(RuntimeError, match="a learner died"):
        pool.run([EpisodeSpec(i, 10 + i, i) for i in range(8)], greedy=True, seed=0, watch=watch)
