"""Rollout workers as Ray actors: each owns an inference engine and a pool of envs and runs the plain
rollout loop of ``agents/training/rollout.py``; the pool hands them episodes and survives their deaths.

    started = connect(None, num_cpus=4)                 # local Ray (or connect("ray://head:10001"))
    groups = create_placement_groups(plan)
    pool = RayWorkerPool(config, plan, groups, weights_ref, version=0)
    trajectories, stats = pool.run(specs, greedy=False, seed=1234)
    pool.set_weights(new_weights_ref, version=1)

:class:`RolloutWorker` is a plain class (tests build it in-process); the pool wraps it with
``ray.remote``. Trajectories come back as plain data: token ids, logprobs, ops, rewards, and the
``version`` of the weights that produced them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.training.envs import EnvSpec
from agents.training.errors import RunStopped
from agents.training.ray.cluster import actor_deaths, death_text, failed_to_start, scheduling
from agents.training.ray.deadline import ChunkDeadline
from agents.training.ray.dispatch import Chunk, Dispatcher, EpisodeSpec
from agents.training.ray.engine_config import EngineConfig
from agents.training.ray.engines import make_engine
from agents.training.ray.placement import PlacementPlan
from agents.training.rollout import Trajectory, rollout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a rollout worker needs to build itself (plain data: it travels to the actor).

    Attributes:
        engine: the inference engine.
        env: the envs (built with :meth:`EnvSpec.make`, like everywhere else).
        torch_threads: torch threads in the worker: the node's cores are shared by many actors.
    """

    engine: EngineConfig
    env: EnvSpec
    torch_threads: int = 1


class RolloutWorker:
    """An engine, ``engine.batch_size`` envs, and the rollout loop (the body of one Ray actor).

    The rollout loop embeds what all the envs' steps of a turn embed in one call per kind (entries,
    queries): with an embedding service that is one request per turn for the whole batch, not one per
    entry (:class:`~atommem_env.batch_embedding.BatchEmbedding`).

    Args:
        config: what to build.
        weights: the learner's current state dict (``None``: the model's own weights).
        version: the number of updates behind ``weights``; stamped on every trajectory.
        embedding_service: an :class:`~agents.training.ray.embedding_service.EmbeddingService` actor the
            envs embed through instead of loading their own model.
    """

    def __init__(self, config: WorkerConfig, weights: Mapping[str, Any] | None = None, version: int = 0,
                 embedding_service: Any = None) -> None:
        import torch

        torch.set_num_threads(config.torch_threads)
        self.engine = make_engine(config.engine)
        if weights is not None:
            self.engine.load_weights(weights)
        self.version = version
        overrides = {}
        if embedding_service is not None:
            from agents.training.ray.embedding_service import ServiceEmbedder

            overrides["embedder"] = ServiceEmbedder.connect(embedding_service)
        self.env_id = config.env.env_id
        self.envs = [config.env.make(**overrides) for _ in range(config.engine.batch_size)]

    def run(self, chunk: Chunk, *, greedy: bool, seed: int) -> list[Trajectory]:
        """Play the chunk's episodes together; the sampler is seeded with ``seed + chunk.number``."""
        self.engine.reseed(seed + chunk.number)
        envs = iter(self.envs)
        trajectories = rollout(
            lambda: next(envs), self.engine.policy(greedy), [s.seed for s in chunk.specs], env_id=self.env_id,
            indices=[s.index for s in chunk.specs], batch_size=len(self.envs),
        )
        for trajectory in trajectories:
            trajectory.version = self.version
        return trajectories

    def set_weights(self, weights: Mapping[str, Any], version: int) -> int:
        """Load the learner's weights; returns the new version (the driver waits on it)."""
        self.engine.load_weights(weights)
        self.version = version
        return version

    def open_weight_channel(self, host: str, port: int, rank_offset: int, world_size: int, factory: str) -> None:
        """The engine's GPU workers join the weight channel to learner rank 0 (vLLM engines only)."""
        self.engine.open_weight_channel(host, port, rank_offset, world_size, factory)

    def receive_weights(self, specs: list[tuple], version: int) -> int:
        """Receive one update broadcast by learner rank 0; returns the new version."""
        self.engine.receive_weights(specs, version)
        self.version = version
        return version

    def sleep(self) -> None:
        """Free the engine's GPU memory while the learners update (colocated placement)."""
        self.engine.sleep()

    def wake(self) -> None:
        """Bring the engine back after :meth:`sleep`."""
        self.engine.wake()

    def pid(self) -> int:
        """This actor's process id (tests kill it to simulate a dead worker)."""
        return os.getpid()


@dataclass
class RunStats:
    """What one :meth:`RayWorkerPool.run` saw: chunks re-run after a worker died or hung, dropped
    duplicates, workers replaced (``hung`` of them for missing a chunk's deadline)."""

    requeued: int = 0
    duplicates: int = 0
    restarts: int = 0
    hung: int = 0


@dataclass(frozen=True)
class _Call:
    """A chunk in flight: which worker holds it, since when, and until when it may."""

    worker: int
    chunk: Chunk
    started: float
    due: float


class WorkerLost(RunStopped, RuntimeError):
    """A rollout worker failed to start, or died more often than ``max_restarts`` allows."""

# While the workers play, the driver looks this often (seconds) at what else it was asked to watch
# (the learner ranks), so that their death stops the run at once.
WATCH_S = 2.0


class RayWorkerPool:
    """One rollout worker actor per engine slot of ``plan``; a dead one is replaced and its work re-run.

    Args:
        config: the workers' configuration.
        plan: where the engines go (its ``engines`` and ``embedders`` slots).
        groups: the plan's placement groups, one per node.
        weights: an object ref of the current state dict (``None``: the model's own weights).
        version: the version of ``weights``.
        max_restarts: replacements allowed per worker over the run.
        fetch_weights: returns an object ref of the current weights for a replacement worker, when
            updates do not pass through the object store (collective weight sync).
        deadline: how long a worker may hold a chunk before it counts as hung (default: measured).

    Attributes:
        restarts: replacements so far, per worker (the limit is ``max_restarts``).
        restarts_outside_rollout: replacements during weight loading, sleep or wake (not in :meth:`run`).
    """

    def __init__(self, config: WorkerConfig, plan: PlacementPlan, groups: Sequence[Any], weights: Any = None,
                 version: int = 0, *, max_restarts: int = 3, fetch_weights: Callable[[], Any] | None = None,
                 deadline: ChunkDeadline | None = None) -> None:
        import ray

        self.config, self.plan, self.groups = config, plan, list(groups)
        self.weights, self.version = weights, version
        self.max_restarts = max_restarts
        self.fetch_weights = fetch_weights
        self.deadline = deadline or ChunkDeadline()
        self.restarts = [0] * len(plan.engines)
        self.restarts_outside_rollout = 0
        self.services = self._embedding_services()
        self._remote = ray.remote(RolloutWorker)
        self.actors = [self._spawn(i) for i in range(len(plan.engines))]

    def _embedding_services(self) -> dict[int, Any]:
        import ray

        from agents.training.ray.embedding_service import EmbeddingService, needs_service

        embedder = self.config.env.options().get("embedder")
        if not needs_service(embedder) or not self.plan.embedders:
            return {}
        remote = ray.remote(EmbeddingService)
        return {
            slot.node: remote.options(**scheduling(self.groups[slot.node], slot.bundle, slot.cpus, 0.0)).remote(
                embedder, self.config.torch_threads
            )
            for slot in self.plan.embedders
        }

    def _spawn(self, i: int) -> Any:
        slot = self.plan.engines[i]
        options = scheduling(self.groups[slot.node], slot.bundle, slot.cpus, slot.gpus)
        return self._remote.options(**options).remote(
            self.config, self.weights, self.version, self.services.get(slot.node)
        )

    def _replace(self, i: int, error: Exception | None = None) -> None:
        """Kill what is left of worker ``i`` (lost by ``error``, or hung) and start a new one with the
        current weights.

        Raises:
            WorkerLost: the worker failed to start (a new one would fail the same way: a missing package,
                a bad model path), or it was lost more than ``max_restarts`` times.
        """
        import ray

        if error is not None and failed_to_start(error):
            raise WorkerLost(f"Rollout worker {i} could not start ({death_text(error)}); a new one would fail "
                             "the same way, so none is started. Fix that and run the command again.")
        self.restarts[i] += 1
        how = death_text(error) if error is not None else "hung"
        if self.restarts[i] > self.max_restarts:
            raise WorkerLost(
                f"Rollout worker {i} was lost {self.restarts[i]} times (--max-worker-restarts {self.max_restarts}; "
                f"the last time: {how}); its log in /tmp/ray/session_latest/logs says why (a worker killed by "
                "Ray's memory monitor: lower --rollout-batch-size or --max-new-tokens)."
            )
        log.warning("rollout worker %d lost (%s); starting a new one (restart %d)", i, how, self.restarts[i])
        ray.kill(self.actors[i], no_restart=True)
        if self.fetch_weights is not None:
            self.weights = self.fetch_weights()
        self.actors[i] = self._spawn(i)

    def run(self, specs: Sequence[EpisodeSpec], *, greedy: bool, seed: int,
            watch: Callable[[], None] | None = None) -> tuple[list[Trajectory], RunStats]:
        """Play every episode once across the workers; trajectories come back in the order of ``specs``.

        A worker that dies, or holds a chunk past its deadline (:mod:`~agents.training.ray.deadline`), is
        replaced and its chunk re-run; each episode counts once. ``watch`` is called at least every
        ``WATCH_S`` seconds meanwhile; what it raises stops the rollout.

        Raises:
            WorkerLost: a worker failed to start, or kept dying.
        """
        import ray

        dispatcher = Dispatcher(specs, self.config.engine.batch_size)
        pending: dict[Any, _Call] = {}
        stats = RunStats()

        def feed(i: int) -> None:
            chunk = dispatcher.next_chunk(i)
            if chunk is not None:
                started = time.monotonic()
                due = started + self.deadline.seconds(len(chunk.specs))
                pending[self.actors[i].run.remote(chunk, greedy=greedy, seed=seed)] = _Call(i, chunk, started, due)

        def lose(i: int, error: Exception | None = None) -> None:
            """Worker ``i`` is gone (dead, or hung without ``error``): requeue its chunks, replace it,
            feed the idle ones."""
            dispatcher.worker_lost(i)
            for other in [r for r, call in pending.items() if call.worker == i]:
                del pending[other]  # the lost actor's other calls fail too; their chunks are re-queued
            self._replace(i, error)
            stats.restarts += 1
            for j in range(len(self.actors)):
                if not dispatcher.in_flight(j):
                    feed(j)

        for i in range(len(self.actors)):
            feed(i)
        while not dispatcher.done:
            if watch is not None:
                watch()
            timeout = max(0.0, min(call.due for call in pending.values()) - time.monotonic())
            if watch is not None:
                timeout = min(timeout, WATCH_S)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=timeout)
            if not ready:
                for i in self._overdue(pending):
                    stats.hung += 1
                    lose(i)
                continue
            call = pending.pop(ready[0])
            try:
                trajectories = ray.get(ready[0])
            except actor_deaths() as error:
                lose(call.worker, error)
                continue
            if dispatcher.complete(call.worker, call.chunk, trajectories):
                self.deadline.observe(trajectories, time.monotonic() - call.started)
            feed(call.worker)
        stats.requeued, stats.duplicates = dispatcher.requeued, dispatcher.duplicates
        return dispatcher.results(), stats

    def _overdue(self, pending: Mapping[Any, _Call]) -> list[int]:
        """Workers whose chunk is past its deadline, each logged as hung."""
        now, workers = time.monotonic(), []
        for call in pending.values():
            if call.due <= now and call.worker not in workers:
                log.warning(
                    "rollout worker %d has held chunk %d (%d episodes) for %.0f s, past its deadline (%s): "
                    "treating it as hung; it is killed and replaced, and its episodes re-run once",
                    call.worker, call.chunk.number, len(call.chunk.specs), now - call.started,
                    self.deadline.describe(len(call.chunk.specs)),
                )
                workers.append(call.worker)
        return workers

    def set_weights(self, weights: Any, version: int) -> None:
        """Every worker loads ``weights`` (an object ref) before its next episode; a dead one is replaced."""
        self.weights, self.version = weights, version
        self._on_all("set_weights", weights, version)

    def channel_ranks(self) -> int:
        """Members the engines add to a weight channel: every GPU worker of every engine."""
        return len(self.actors) * self.config.engine.tensor_parallel_size

    def open_weight_channel(self, host: str, port: int, world_size: int, factory: str) -> list[Any]:
        """Refs of every engine joining the channel; engine ``i`` takes ranks 1 + i x tensor-parallel size on."""
        step = self.config.engine.tensor_parallel_size
        return [actor.open_weight_channel.remote(host, port, 1 + i * step, world_size, factory)
                for i, actor in enumerate(self.actors)]

    def receive_weights(self, specs: list[tuple], version: int) -> list[Any]:
        """Refs of every worker receiving one broadcast update (await them with the learners')."""
        self.version = version  # a replacement starts from fetch_weights() at this version
        return [actor.receive_weights.remote(specs, version) for actor in self.actors]

    def sleep(self) -> None:
        """Every worker's engine frees its GPU memory; a dead worker is replaced."""
        self._on_all("sleep")

    def wake(self) -> None:
        """Every worker's engine comes back after :meth:`sleep`; a dead worker is replaced."""
        self._on_all("wake")

    def _on_all(self, method: str, *args: Any) -> None:
        import ray
        from ray.exceptions import GetTimeoutError

        refs = [getattr(actor, method).remote(*args) for actor in self.actors]
        limit = self.deadline.fixed_s or self.deadline.startup_s
        lost: tuple[type[Exception], ...] = (GetTimeoutError, *actor_deaths())
        for i, ref in enumerate(refs):
            try:
                ray.get(ref, timeout=limit)
            except lost as error:
                hung = isinstance(error, GetTimeoutError)
                if hung:
                    log.warning("rollout worker %d did not finish %s in %.0f s: treating it as hung", i, method, limit)
                self._replace(i, None if hung else error)  # the new worker starts from self.weights, awake
                self.restarts_outside_rollout += 1

    def pids(self) -> list[int]:
        """Every worker's process id, in worker order (tests kill one to simulate a lost worker)."""
        import ray

        return ray.get([actor.pid.remote() for actor in self.actors])

    def shutdown(self) -> None:
        """Kill every rollout worker and embedding service (the pool cannot be used again)."""
        import ray

        for actor in self.actors + list(self.services.values()):
            ray.kill(actor, no_restart=True)
        self.actors, self.services = [], {}


# ---------------------------------------------------------------------------------------------------
# The cluster
