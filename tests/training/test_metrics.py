"""agents.training.metrics: per-question and per-episode EM side by side, with clustered intervals."""

import pytest

from agents.training.evaluation import RunningEM
from agents.training.metrics import INTERVAL_METRICS, confidence_intervals, copied_creates, summarize
from agents.training.rollout import Trajectory, Turn
from agents.training.stats import bootstrap_ci
from atommem_env.errors import ConfigError


def episode(index, em, f1=None):
    f1 = em if f1 is None else f1
    turn = Turn("user", "<final_answer>x</final_answer>", [], [], dict.fromkeys(
        ("create", "read", "update", "delete", "scratchpad"), 0), 0, "answering")
    result = {"em": em, "f1": f1, "substring_em": em, "answers": [], "golds": [], "skipped": []}
    return Trajectory("AtomMem-X-v0", index, f"x/{index}", index, "system", [turn], sum(em) / len(em), True,
                      result=result)


TRAJECTORIES = [episode(0, [1.0]), episode(1, [0.0, 0.0, 0.0]), episode(2, [1.0, 1.0], [1.0, 0.5])]


def test_summarize_reports_per_question_and_per_episode_means():
    summary = summarize(TRAJECTORIES)
    assert summary["questions"] == 6
    assert summary["em"] == pytest.approx(3 / 6)  # pooled over questions, as before
    assert summary["episode_em"] == pytest.approx((1 + 0 + 1) / 3)  # mean of episode fractions
    assert summary["episode_em"] == pytest.approx(summary["reward"])  # the episode reward is that fraction
    assert summary["f1"] == pytest.approx(2.5 / 6)
    assert summary["episode_f1"] == pytest.approx((1 + 0 + 0.75) / 3)


def test_running_em_matches_summarize_batch_by_batch():
    running = RunningEM(TRAJECTORIES[:1])  # episodes already played (a --resume) count from the start
    assert running.add([]) == pytest.approx(summarize(TRAJECTORIES[:1])["em"])
    assert running.add(TRAJECTORIES[1:2]) == pytest.approx(summarize(TRAJECTORIES[:2])["em"])
    assert running.add(TRAJECTORIES[2:]) == pytest.approx(summarize(TRAJECTORIES)["em"])
    assert RunningEM().add([]) == 0.0


def test_confidence_intervals_bracket_every_metric_and_match_the_clustered_bootstrap():
    summary = summarize(TRAJECTORIES)
    bounds = confidence_intervals(TRAJECTORIES, resamples=500, seed=4)
    assert set(bounds) == {f"{m}_{side}" for m in INTERVAL_METRICS for side in ("lo", "hi")}
    for metric in INTERVAL_METRICS:
        assert bounds[f"{metric}_lo"] <= summary[metric] <= bounds[f"{metric}_hi"]
    expected = bootstrap_ci([[1.0], [0.0, 0.0, 0.0], [1.0, 1.0]], weighting="episode", resamples=500, seed=4)
    assert (bounds["episode_em_lo"], bounds["episode_em_hi"]) == (expected.lo, expected.hi)
    assert confidence_intervals(TRAJECTORIES, resamples=500, seed=4) == bounds  # reproducible


def test_confidence_intervals_of_nothing_and_bad_options():
    assert confidence_intervals([]) == {}
    with pytest.raises(ConfigError, match="resamples"):
        confidence_intervals(TRAJECTORIES, resamples=5)


def reading_turn(user, response, tool_calls=None):
    counts = dict.fromkeys(("create", "read", "update", "delete", "scratchpad"), 0)
    return Turn(user, response, [], [], counts, 0, "reading", tool_calls=tool_calls)


def test_copied_creates_is_the_share_of_create_texts_found_verbatim_in_the_prompt():
    user = "Article chunk:\nAda Byron was born in London. She studied under Mary Somerville."
    turns = [
        reading_turn(user, "<add_memory> Ada Byron was born in London. </add_memory>"   # copied (stripped)
                           "<add_memory>Ada Byron studied under Somerville.</add_memory>"  # paraphrased
                           "<update_memory>She studied under Mary Somerville.</update_memory>"),  # not a Create
        reading_turn(user, "", tool_calls=[{"name": "add_memory",
                                            "arguments": {"text": "She studied under Mary Somerville."}}]),
    ]
    assert copied_creates(turns) == pytest.approx(2 / 3)
    assert copied_creates([reading_turn(user, "<update_query>Ada</update_query>")]) == 0.0  # nothing created
    assert summarize(TRAJECTORIES)["copied_creates"] == 0.0
