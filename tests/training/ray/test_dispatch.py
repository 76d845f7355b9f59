"""agents/training/ray/dispatch.py: chunks go to whichever worker is free, lost work is re-queued, every episode
counts exactly once (Ray-free)."""

from __future__ import annotations

import random

import pytest

from agents.training.ray.dispatch import Dispatcher, EpisodeSpec
from agents.training.rollout import Trajectory


def specs(n):
    return [EpisodeSpec(uid=i, seed=100 + i, index=i % 3) for i in range(n)]


def play(chunk, worker):
    """What a worker returns: one trajectory per episode, tagged with who played it."""
    return [Trajectory("env", s.seed, f"{worker}", s.uid, "") for s in chunk.specs]


def test_chunks_are_cut_in_order_and_results_come_back_in_episode_order():
    dispatcher = Dispatcher(specs(7), chunk_size=3)
    a, b = dispatcher.next_chunk("a"), dispatcher.next_chunk("b")
    assert [s.uid for s in a.specs] == [0, 1, 2] and [s.uid for s in b.specs] == [3, 4, 5]
    dispatcher.complete("b", b, play(b, "b"))  # b finishes first and takes the last chunk
    c = dispatcher.next_chunk("b")
    assert c.number == 2 and [s.uid for s in c.specs] == [6]
    assert dispatcher.next_chunk("b") is None
    dispatcher.complete("b", c, play(c, "b"))
    assert not dispatcher.done
    dispatcher.complete("a", a, play(a, "a"))
    assert dispatcher.done and [t.index for t in dispatcher.results()] == list(range(7))


def test_a_lost_workers_chunks_are_rerun_once_and_a_late_duplicate_is_dropped():
    dispatcher = Dispatcher(specs(6), chunk_size=2)
    lost = dispatcher.next_chunk("dead")
    ok = dispatcher.next_chunk("live")
    assert dispatcher.worker_lost("dead") == [lost] and dispatcher.requeued == 1
    again = dispatcher.next_chunk("live2")
    assert again == lost  # re-queued at the front
    assert dispatcher.complete("live2", again, play(again, "live2"))
    assert not dispatcher.complete("dead", lost, play(lost, "dead"))  # the dead worker's late result
    assert dispatcher.duplicates == 1
    dispatcher.complete("live", ok, play(ok, "live"))
    last = dispatcher.next_chunk("live")
    dispatcher.complete("live", last, play(last, "live"))
    results = dispatcher.results()
    assert [t.index for t in results] == list(range(6))
    assert {t.episode_id for t in results[:2]} == {"live2"}


def test_a_result_that_arrives_while_its_copy_waits_in_line_takes_the_copy_out():
    dispatcher = Dispatcher(specs(4), chunk_size=2)
    first = dispatcher.next_chunk("slow")
    dispatcher.worker_lost("slow")  # given up on, but it was only slow
    assert dispatcher.complete("slow", first, play(first, "slow"))
    second = dispatcher.next_chunk("other")
    assert second.number == 1 and dispatcher.next_chunk("other") is None


def test_random_failures_never_lose_or_double_an_episode():
    rng = random.Random(3)
    dispatcher = Dispatcher(specs(50), chunk_size=4)
    workers = ["w0", "w1", "w2"]
    while not dispatcher.done:
        worker = rng.choice(workers)
        held = dispatcher.in_flight(worker)
        if held and rng.random() < 0.2:
            dispatcher.worker_lost(worker)  # it died: whatever it held is re-run by someone
        elif held:
            dispatcher.complete(worker, held[0], play(held[0], worker))
        else:
            dispatcher.next_chunk(worker)
    assert [t.index for t in dispatcher.results()] == list(range(50))


@pytest.mark.parametrize("bad, message", [
    (lambda: Dispatcher(specs(2), chunk_size=0), "at least one episode"),
    (lambda: Dispatcher([EpisodeSpec(1, 1), EpisodeSpec(1, 2)], 2), "repeated uids"),
    (lambda: Dispatcher(specs(2), 2).results(), "not done yet"),
])
def test_misuse_is_refused_with_a_reason(bad, message):
    with pytest.raises((ValueError, RuntimeError), match=message):
        bad()


def test_a_short_result_is_refused():
    dispatcher = Dispatcher(specs(2), chunk_size=2)
    chunk = dispatcher.next_chunk("w")
    with pytest.raises(ValueError, match="one trajectory per episode"):
        dispatcher.complete("w", chunk, play(chunk, "w")[:1])
