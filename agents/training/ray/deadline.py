"""How long a rollout worker may hold a chunk of episodes before it counts as hung.

A dead worker is noticed by Ray (its calls fail); a hung one is not: a process stopped mid-rollout
(SIGSTOP, a driver stuck in a kernel, a deadlocked NCCL call) keeps its chunk forever and the run waits
without a word. So every chunk gets a deadline, after which its worker is treated as dead: killed,
replaced, and its episodes re-run exactly once (:class:`~agents.training.ray.workers.RayWorkerPool`).

The deadline comes from what the run has measured, in tokens:

    deadline = floor_s + slack × (episodes in the chunk × most tokens one episode generated so far)
                                / (slowest generation speed of a finished chunk, tokens per second)

so it follows the model, the hardware and the response lengths as they change during training, and
a chunk may take ``slack`` times longer than the longest, slowest chunk seen before it counts as hung.
Before any chunk has finished there is no speed to go by: the first chunks include loading the
engine (minutes for a large model or vLLM), so they get ``startup_s``. ``fixed_s`` overrides it all
(``ray_train.py --chunk-deadline-s``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agents.training.rollout import Trajectory


@dataclass
class ChunkDeadline:
    """The measured deadline (see the module docstring).

    Attributes:
        fixed_s: a fixed deadline in seconds for every chunk (``None``: measured).
        startup_s: the deadline before any chunk has finished.
        slack: how many times the measured worst case a chunk may take.
        floor_s: added to every measured deadline (scheduling, env resets, a slow first prefill).
    """

    fixed_s: float | None = None
    startup_s: float = 1800.0
    slack: float = 4.0
    floor_s: float = 120.0
    tokens_per_s: float | None = None  # the slowest finished chunk's speed
    tokens_per_episode: float = 0.0  # the most tokens one episode has generated

    def __post_init__(self) -> None:
        for name in ("startup_s", "slack", "floor_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ChunkDeadline.{name}={getattr(self, name)!r} must be > 0.")
        if self.fixed_s is not None and not self.fixed_s > 0:
            raise ValueError(f"ChunkDeadline.fixed_s={self.fixed_s!r} must be > 0 or None (measured).")

    def observe(self, trajectories: Sequence[Trajectory], seconds: float) -> None:
        """Learn from a finished chunk: its episodes' generated tokens and its wall time."""
        per_episode = [generated_tokens(t) for t in trajectories]
        if not per_episode or seconds <= 0:
            return
        self.tokens_per_episode = max(self.tokens_per_episode, max(per_episode))
        speed = sum(per_episode) / seconds
        if speed > 0:
            self.tokens_per_s = speed if self.tokens_per_s is None else min(self.tokens_per_s, speed)

    def seconds(self, episodes: int) -> float:
        """The deadline of a chunk of ``episodes`` episodes."""
        if self.fixed_s is not None:
            return self.fixed_s
        if self.tokens_per_s is None or self.tokens_per_episode <= 0:
            return self.startup_s
        return self.floor_s + self.slack * episodes * self.tokens_per_episode / self.tokens_per_s

    def describe(self, episodes: int) -> str:
        """How the deadline of such a chunk was set, for the log line that gives a worker up."""
        if self.fixed_s is not None:
            return f"--chunk-deadline-s {self.fixed_s:g}"
        if self.tokens_per_s is None:
            return f"start-up deadline {self.startup_s:g} s (no chunk had finished yet)"
        return (f"{self.floor_s:g} s + {self.slack:g} x {episodes} episodes x {self.tokens_per_episode:.0f} tokens "
                f"at {self.tokens_per_s:.1f} tokens/s")


def generated_tokens(trajectory: Trajectory) -> int:
    """Tokens the policy generated in an episode (characters / 4 where an engine gives no token ids)."""
    total = 0
    for turn in trajectory.turns:
        total += len(turn.response_ids) if turn.response_ids is not None else len(turn.response) // 4
    return total
