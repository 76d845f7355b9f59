"""agents.training.fidelity: the per-rule protocols, exact re-scoring, and the diagnostic policies."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest

import atommem_env  # noqa: F401
from agents import make_policy
from agents.diagnostics import AlwaysYesPolicy, OraclePolicy
from agents.training.errors import RunError
from agents.training.fidelity import build_variants, replay, replay_if_unchanged, variant_row
from agents.training.metrics import summarize
from agents.training.rollout import rollout
from atommem_env.errors import ConfigError, DataError
from atommem_env.protocol import ATOMMEM, REFERENCE, SCORING_RULES, differing_rules, with_rules
from tests.support.datasets import FIXTURES

SMALL = {"data_dir": str(FIXTURES), "num_documents": 10, "questions_per_episode": "single"}
SYNTHETIC_PAPER = {"questions_per_episode": "paper", "num_documents": 60}


def _play(env_id, protocol, policy, n=3, **options):
    make = lambda: gym.make(env_id, protocol=protocol, **options)  # noqa: E731
    return rollout(make, policy, list(range(n)), indices=list(range(n)), batch_size=n)


def test_every_variant_differs_from_its_baseline_in_exactly_its_rule() -> None:
    variants = build_variants(directions=("fix", "quirk"))
    ends = {"reference": REFERENCE, "atommem": ATOMMEM}
    differing = differing_rules(REFERENCE, ATOMMEM)
    assert [v.name for v in variants[:2]] == ["reference", "atommem"] and len(variants) == 2 + 2 * len(differing)
    for v in variants[2:]:
        assert differing_rules(v.protocol, ends[v.baseline]) == (v.rule,)
        assert v.protocol.name == v.name
        assert v.replays == (v.baseline if v.rule in SCORING_RULES else None)
    fixes = [v for v in variants if v.name.startswith("reference+")]
    assert [v.rule for v in fixes] == list(differing)
    assert all(getattr(v.protocol, v.rule) == getattr(ATOMMEM, v.rule) for v in fixes)


def test_variants_refuse_unknown_rules_and_rules_the_protocols_share() -> None:
    with pytest.raises(ConfigError, match="unknown"):
        build_variants(["nonsense"])
    with pytest.raises(ConfigError, match="agree"):
        build_variants(["grouping"])
    with pytest.raises(ConfigError, match="direction"):
        build_variants(directions=["sideways"])
    assert [v.name for v in build_variants(breakdown=False)] == ["reference", "atommem"]


@pytest.mark.parametrize("base", [REFERENCE, ATOMMEM], ids=["reference", "atommem"])
@pytest.mark.parametrize("policy", ["heuristic", "always-yes", "random"])
def test_rescoring_equals_playing_for_every_scoring_rule(base, policy) -> None:
    source = ATOMMEM if base is REFERENCE else REFERENCE
    recorded = _play("AtomMem-HotpotQA-v0", base, make_policy(policy), **SMALL)
    for rule in SCORING_RULES:
        variant = with_rules(base, source, [rule])
        env = gym.make("AtomMem-HotpotQA-v0", protocol=variant, **SMALL)
        rescored = replay(env, recorded)
        played = _play("AtomMem-HotpotQA-v0", variant, make_policy(policy), **SMALL)
        assert [t.to_json() for t in rescored] == [t.to_json() for t in played], rule


@pytest.mark.parametrize("base", [REFERENCE, ATOMMEM], ids=["reference", "atommem"])
def test_rescoring_equals_playing_for_every_scoring_rule_under_memagent(base) -> None:
    source = ATOMMEM if base is REFERENCE else REFERENCE
    recorded = _play("AtomMem-MemAgent-HotpotQA-v0", base, AlwaysYesPolicy(), **SMALL)
    for rule in SCORING_RULES:
        variant = with_rules(base, source, [rule])
        rescored = replay(gym.make("AtomMem-MemAgent-HotpotQA-v0", protocol=variant, **SMALL), recorded)
        played = _play("AtomMem-MemAgent-HotpotQA-v0", variant, AlwaysYesPolicy(), **SMALL)
        assert [t.to_json() for t in rescored] == [t.to_json() for t in played], rule


def test_rescoring_equals_playing_on_multi_question_episodes() -> None:
    recorded = _play("AtomMem-Synthetic-v0", REFERENCE, AlwaysYesPolicy(), n=4, **SYNTHETIC_PAPER)
    for rule in SCORING_RULES:
        variant = with_rules(REFERENCE, ATOMMEM, [rule])
        rescored = replay(gym.make("AtomMem-Synthetic-v0", protocol=variant, **SYNTHETIC_PAPER), recorded)
        played = _play("AtomMem-Synthetic-v0", variant, AlwaysYesPolicy(), n=4, **SYNTHETIC_PAPER)
        assert [t.to_json() for t in rescored] == [t.to_json() for t in played], rule


def test_a_replay_through_other_dynamics_is_refused() -> None:
    recorded = _play("AtomMem-Synthetic-v0", ATOMMEM, make_policy("heuristic"))
    other = with_rules(ATOMMEM, REFERENCE, ["turn_budget"])  # 41 turns: the same prompts, so still exact
    assert [t.result for t in replay(gym.make("AtomMem-Synthetic-v0", protocol=other), recorded)] == \
        [t.result for t in recorded]
    cut = dataclasses.replace(ATOMMEM, turn_budget=2)  # ends the episodes early: not the recording
    with pytest.raises(RunError, match="diverged"):
        replay(gym.make("AtomMem-Synthetic-v0", protocol=cut), recorded)


def test_the_oracle_scores_one_under_atommem_on_synthetic() -> None:
    oracle = OraclePolicy()
    env = gym.make("AtomMem-Synthetic-v0", **SYNTHETIC_PAPER)
    oracle.prepare(env.unwrapped.source, range(8))
    trajectories = _play("AtomMem-Synthetic-v0", ATOMMEM, oracle, n=8, **SYNTHETIC_PAPER)
    assert [t.reward for t in trajectories] == [1.0] * 8
    assert sum(len(t.result["em"]) for t in trajectories) > 8  # multi-question episodes too


def test_the_oracle_without_its_answer_key_says_how_to_give_it() -> None:
    with pytest.raises(DataError, match="prepare"):
        _play("AtomMem-Synthetic-v0", ATOMMEM, make_policy("oracle"), n=1)


def test_always_yes_answers_yes_to_everything() -> None:
    trajectories = _play("AtomMem-Synthetic-v0", ATOMMEM, AlwaysYesPolicy(), n=2)
    assert all(a == "yes" for t in trajectories for a in t.result["answers"])


def test_variant_row_refuses_episodes_with_other_questions() -> None:
    variants = build_variants(breakdown=False)
    a = _play("AtomMem-Synthetic-v0", REFERENCE, AlwaysYesPolicy(), n=2)
    b = _play("AtomMem-Synthetic-v0", ATOMMEM, AlwaysYesPolicy(), n=2)
    row = variant_row("x", "always-yes", variants[1], b, a, resamples=100)
    assert row["em_diff"] == row["em"] - variant_row("x", "always-yes", variants[0], a, None, resamples=100)["em"]
    b[0].result["golds"] = ["something else"]
    with pytest.raises(DataError, match="paired"):
        variant_row("x", "always-yes", variants[1], b, a, resamples=100)


def test_a_row_counts_turns_and_invalid_actions_as_summarize_does() -> None:
    trajectories = _play("AtomMem-Synthetic-v0", REFERENCE, make_policy("random"), n=3)
    summary = summarize(trajectories)
    row = variant_row("x", "random", build_variants(breakdown=False)[0], trajectories, None, resamples=100)
    assert summary["invalid_per_turn"] > 0  # about one random action in five is malformed
    assert {k: row[k] for k in ("turns", "invalid_per_turn", "truncated")} == \
        {k: summary[k] for k in ("turns", "invalid_per_turn", "truncated")}


@pytest.mark.parametrize("rule", ["feedback", "turn_budget", "answer_while_reading"])
@pytest.mark.parametrize("policy", ["heuristic", "oracle"])
def test_an_unchanged_replay_equals_playing_and_a_changed_one_is_left_to_play(rule, policy) -> None:
    options = {**SYNTHETIC_PAPER, "num_documents": 40}
    agent = make_policy(policy)
    if policy == "oracle":
        agent.prepare(gym.make("AtomMem-Synthetic-v0", **options).unwrapped.source, range(6))
    recorded = _play("AtomMem-Synthetic-v0", REFERENCE, agent, n=6, **options)
    variant = with_rules(REFERENCE, ATOMMEM, [rule])
    played = _play("AtomMem-Synthetic-v0", variant, agent, n=6, **options)
    env, base_env = (gym.make("AtomMem-Synthetic-v0", protocol=p, **options) for p in (variant, REFERENCE))
    kept = 0
    for rec, truth in zip(recorded, played, strict=True):
        replayed = replay_if_unchanged(env, base_env, rec)
        if replayed:
            kept += 1
            assert replayed[0].to_json() == truth.to_json()
    if rule == "answer_while_reading":
        assert kept == 6  # neither policy answers while reading


def test_a_replay_with_other_documents_is_left_to_play() -> None:
    recorded = _play("AtomMem-HotpotQA-v0", REFERENCE, make_policy("heuristic"), **SMALL)
    variant = with_rules(REFERENCE, ATOMMEM, ["document_order"])
    env, base_env = (gym.make("AtomMem-HotpotQA-v0", protocol=p, **SMALL) for p in (variant, REFERENCE))
    assert [replay_if_unchanged(env, base_env, rec) for rec in recorded] == [[], [], []]
