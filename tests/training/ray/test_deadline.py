"""agents/training/ray/deadline.py: how long a rollout worker may hold a chunk before it counts as hung."""

from __future__ import annotations

import pytest

from agents.training.ray.deadline import ChunkDeadline, generated_tokens
from agents.training.rollout import Trajectory, Turn


def episode(*responses: list[int] | str) -> Trajectory:
    turns = [Turn(user="u", response=r if isinstance(r, str) else "x", ops=[], errors=[], op_counts={},
                  memory_size=0, phase="reading", response_ids=None if isinstance(r, str) else r)
             for r in responses]
    return Trajectory(env_id="e", seed=0, episode_id="0", index=0, system="", turns=turns)


def test_tokens_are_counted_from_ids_or_estimated_from_characters():
    assert generated_tokens(episode([1, 2, 3], [4])) == 4
    assert generated_tokens(episode("a" * 40)) == 10  # an engine without token ids: characters / 4


def test_before_any_chunk_finished_the_start_up_deadline_applies():
    deadline = ChunkDeadline(startup_s=600)
    assert deadline.seconds(16) == 600
    assert "no chunk had finished" in deadline.describe(16)


def test_the_measured_deadline_is_the_longest_episode_at_the_slowest_speed_with_slack():
    deadline = ChunkDeadline(slack=4, floor_s=10)
    deadline.observe([episode([0] * 100), episode([0] * 300)], seconds=4.0)  # 100 tokens/s, 300 per episode
    assert deadline.seconds(2) == pytest.approx(10 + 4 * 2 * 300 / 100)
    deadline.observe([episode([0] * 50)], seconds=1.0)  # a slower chunk: 50 tokens/s
    assert deadline.tokens_per_s == 50 and deadline.tokens_per_episode == 300
    assert deadline.seconds(1) == pytest.approx(10 + 4 * 300 / 50)
    deadline.observe([episode([0] * 1000)], seconds=1.0)  # a fast chunk does not shorten the deadline
    assert deadline.tokens_per_s == 50 and deadline.tokens_per_episode == 1000
    assert "tokens/s" in deadline.describe(1)


def test_a_fixed_deadline_overrides_the_measurement():
    deadline = ChunkDeadline(fixed_s=30)
    deadline.observe([episode([0] * 10)], seconds=100.0)
    assert deadline.seconds(64) == 30 and "--chunk-deadline-s 30" in deadline.describe(64)


def test_nothing_is_learnt_from_an_empty_or_instant_chunk():
    deadline = ChunkDeadline(startup_s=99)
    deadline.observe([], seconds=1.0)
    deadline.observe([episode([1])], seconds=0.0)
    deadline.observe([episode()], seconds=1.0)  # no tokens at all: no speed
    assert deadline.seconds(4) == 99


@pytest.mark.parametrize("kwargs", [{"fixed_s": 0}, {"startup_s": -1}, {"slack": 0}, {"floor_s": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ChunkDeadline(**kwargs)
