"""The rollout loop: many envs, one batched policy call per step, plain-data trajectories.

This is plain Python on purpose: the same function runs in a unit test with a scripted policy and
inside a Ray actor next to an inference engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import gymnasium as gym

from agents.base import Policy
from agents.registry import make_policy
from atommem_env.batch_embedding import BatchEmbedding
from atommem_env.info import ErrorRecord, OpRecord, StepInfo, as_step_info


@dataclass
class Turn:
    """One step of an episode: what the policy saw and said, and what the env made of it."""

    user: str
    response: str
    ops: list[OpRecord]
    errors: list[ErrorRecord]
    op_counts: dict[str, int]
    memory_size: int
    phase: str
    prompt_ids: list[int] | None = None
    response_ids: list[int] | None = None
    logprobs: list[float] | None = None
    tool_calls: list[dict[str, Any]] | None = None  # the calls the env ran instead of the response text

    @property
    def action(self) -> str | list[dict[str, Any]]:
        """What was passed to ``env.step``: the tool calls if there were any, else the response text."""
        return self.tool_calls if self.tool_calls is not None else self.response


@dataclass
class Trajectory:
    """One finished episode; JSON-serializable through :meth:`to_json`."""

    env_id: str
    seed: int
    episode_id: str
    index: int
    system: str
    turns: list[Turn] = field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    result: dict[str, Any] = field(default_factory=dict)
    version: int | None = None  # the weights version that produced it (distributed training), else None
    tools: list[dict[str, Any]] = field(default_factory=list)  # the schemas offered (action_format="tools")

    def to_json(self) -> dict[str, Any]:
        """The trajectory as plain dicts and lists (turns included), ready for ``json.dumps``."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trajectory:
        """Rebuild a trajectory from :meth:`to_json` output (e.g. a line of ``trajectories.jsonl``).

        Keys that are not fields (such as the ``policy`` that ``evaluate.py`` adds) are ignored, so
        a stored line can be passed as it is.
        """
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["turns"] = [Turn(**turn) for turn in data.get("turns", [])]
        return cls(**kwargs)


def episode_group(trajectory: Trajectory) -> tuple[str, int, int]:
    """The GRPO group key of an episode: rollouts with the same env id, index and seed start alike."""
    return (trajectory.env_id, trajectory.index, trajectory.seed)


def episode_groups(trajectories: Sequence[Trajectory]) -> list[list[Trajectory]]:
    """The trajectories split into their GRPO groups (by :func:`episode_group`), in order of first appearance."""
    members: dict[tuple[str, int, int], list[Trajectory]] = {}
    for trajectory in trajectories:
        members.setdefault(episode_group(trajectory), []).append(trajectory)
    return list(members.values())


def is_flat(group: Sequence[Trajectory]) -> bool:
    """Whether every rollout of a group scored alike: its advantages are all exactly 0, no learning signal."""
    rewards = [t.reward for t in group]
    return max(rewards) == min(rewards)


_RESULT_KEYS = ("answers", "golds", "skipped", "em", "f1", "substring_em", "reward")


def rollout(
    make_env: Callable[[], gym.Env],
    policy: Policy | str,
    seeds: Sequence[int],
    *,
    env_id: str = "",
    indices: Sequence[int | None] | None = None,
    batch_size: int = 8,
    embed_together: bool = True,
) -> list[Trajectory]:
    """Run one episode per seed with up to ``batch_size`` envs stepping together.

    Args:
        make_env: builds one env (called ``min(batch_size, len(seeds))`` times; envs are reused).
        policy: answers a batch of observations at each step; a spec string (``"heuristic"``,
            ``"my_policy.py:AlwaysStore"``, ...) is built with :func:`agents.registry.make_policy`.
        seeds: one reset seed per episode.
        env_id: recorded in each trajectory.
        indices: optional pinned episode index per seed (``None`` lets the seed draw it).
        batch_size: envs stepped together, i.e. the size of each policy call.
        embed_together: embed the texts of all envs of a turn in one call per embedder
            (:class:`~atommem_env.batch_embedding.BatchEmbedding`: envs with equal embedders get one shared
            embedder, and keep it); every env's results stay those of stepping it alone with the hashing
            embedder. False: each env embeds its own texts as it steps (for comparison).

    Returns:
        Trajectories in the order of ``seeds``.

    Raises:
        ValueError: ``indices`` and ``seeds`` differ in length, or the policy returned a number of
            completions other than one per observation.
        ConfigError: ``policy`` is a spec that names no policy.
    """
    if isinstance(policy, str):
        policy = make_policy(policy)
    indices = list(indices) if indices is not None else [None] * len(seeds)
    if len(indices) != len(seeds):
        raise ValueError(f"indices has {len(indices)} entries for {len(seeds)} seeds.")
    envs = [make_env() for _ in range(max(1, min(batch_size, len(seeds))))]
    shared = BatchEmbedding(envs) if embed_together else None
    results: list[Trajectory | None] = [None] * len(seeds)
    pending = list(range(len(seeds)))
    active: dict[int, tuple[int, Trajectory, dict]] = {}  # env slot -> (episode, trajectory, obs)

    def start(slot: int) -> None:
        episode = pending.pop(0)
        options = {"index": indices[episode]} if indices[episode] is not None else None
        obs, info = envs[slot].reset(seed=int(seeds[episode]), options=options)
        traj = Trajectory(env_id, int(seeds[episode]), info["episode_id"], info["index"], obs["system"],
                          tools=list(obs.get("tools", ())))
        active[slot] = (episode, traj, obs)

    def step(slot: int, action: Any, completion: Any) -> None:
        episode, traj, obs = active[slot]
        next_obs, reward, terminated, truncated, info = envs[slot].step(action)
        traj.turns.append(_turn(obs, completion, as_step_info(info)))
        if terminated or truncated:
            traj.reward, traj.terminated, traj.truncated = float(reward), terminated, truncated
            traj.result = {k: info[k] for k in _RESULT_KEYS}
            results[episode] = traj
            del active[slot]
            if pending:
                start(slot)
        else:
            active[slot] = (episode, traj, next_obs)

    for slot in range(len(envs)):
        if pending:
            start(slot)
    try:
        while active:
            slots = sorted(active)
            completions = policy.act([active[s][2] for s in slots])
            if len(completions) != len(slots):  # a short answer would leave its envs waiting for ever
                raise ValueError(
                    f"Policy {getattr(policy, 'name', type(policy).__name__)!r} returned {len(completions)} "
                    f"completions for {len(slots)} observations; act() must answer each observation once, in "
                    "input order."
                )
            actions = {slot: completion.action for slot, completion in zip(slots, completions, strict=True)}
            if shared is not None:
                shared.prefetch(actions)
            for slot, completion in zip(slots, completions, strict=True):
                step(slot, actions[slot], completion)
    finally:
        if shared is not None:
            shared.release()
    return [t for t in results if t is not None]


def _turn(obs: dict[str, Any], completion: Any, info: StepInfo) -> Turn:
    as_list = lambda x: list(x) if x is not None else None  # noqa: E731
    return Turn(
        user=obs["user"],
        response=completion.text,
        ops=info["ops"],
        errors=info["errors"],
        op_counts=info["op_counts"],
        memory_size=info["memory_size"],
        phase=info["phase"],
        prompt_ids=as_list(completion.prompt_ids),
        response_ids=as_list(completion.response_ids),
        logprobs=as_list(completion.logprobs),
        tool_calls=as_list(completion.tool_calls),
    )
