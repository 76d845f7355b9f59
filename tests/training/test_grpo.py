"""GRPO math on hand-made numbers, plus property tests of its invariants."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from agents.training.batching import collate, pack_micro_batches  # noqa: E402
from agents.training.grpo import (  # noqa: E402
    Sample,
    clipped_policy_loss,
    entropy_from_logits,
    group_advantages,
    grpo_samples,
    grpo_token_terms,
    k3_kl,
    response_tokens,
    samples_to_forward,
    token_mean,
    turn_samples,
)
from agents.training.rollout import Trajectory, Turn, episode_group, episode_groups, is_flat  # noqa: E402

# --- advantages ------------------------------------------------------------------------------------


def test_advantage_is_reward_minus_group_mean_and_constant_groups_get_zero():
    rewards = [1.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    advantages = group_advantages(rewards, ["a", "a", "a", "a", "b", "b"])
    np.testing.assert_allclose(advantages, [0.5, -0.5, 0.0, 0.0, 0.0, 0.0])


def test_groups_need_not_be_contiguous():
    advantages = group_advantages([1.0, 3.0, 0.0, 5.0], [0, 1, 0, 1])
    np.testing.assert_allclose(advantages, [0.5, -1.0, -0.5, 1.0])


def test_std_scaling_divides_by_the_sample_std():
    advantages = group_advantages([1.0, 0.0, 0.5, 0.5], [0] * 4, scale_by_std=True)
    std = math.sqrt((0.25 + 0.25) / 3)  # ddof=1, as verl and TRL
    np.testing.assert_allclose(advantages, [0.5 / std, -0.5 / std, 0.0, 0.0], rtol=1e-5)


def test_zero_variance_and_singleton_groups_stay_zero_with_std_scaling():
    advantages = group_advantages([0.7, 0.7, 0.7, 0.3], [0, 0, 0, 1], scale_by_std=True)
    assert advantages.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_rewards_and_group_keys_must_match_in_length():
    with pytest.raises(ValueError, match="2 rewards but 3 group keys"):
        group_advantages([1.0, 0.0], [0, 0, 1])


# --- samples from trajectories ---------------------------------------------------------------------


def _turn(prompt, response, logprobs):
    return Turn("user", "text", [], [], {}, 0, "reading", prompt_ids=prompt, response_ids=response, logprobs=logprobs)


def _trajectory(seed, reward, turns, index=3):
    return Trajectory("AtomMem-Synthetic-v0", seed, f"e{seed}-{reward}", index, "system", turns=turns, reward=reward)


def test_every_turn_becomes_a_sample_with_its_episodes_advantage():
    good = _trajectory(0, 1.0, [_turn([1, 2], [3], [-0.1]), _turn([4], [5, 6], [-0.2, -0.3]), _turn([7], [8], [-1.0])])
    bad = _trajectory(0, 0.0, [_turn([9], [10], [-0.5])])
    other_group = _trajectory(1, 1.0, [_turn([11], [12], [-0.5])])
    # A JSON round trip first: training reads stored trajectories.
    trajectories = [Trajectory.from_json(t.to_json()) for t in (good, bad, other_group)]
    samples = grpo_samples(trajectories)
    assert [s.advantage for s in samples] == [0.5, 0.5, 0.5, -0.5, 0.0]
    assert samples[1] == Sample((4,), (5, 6), (-0.2, -0.3), 0.5)
    assert episode_group(good) == episode_group(bad) != episode_group(other_group)


def test_groups_are_split_by_their_key_in_order_and_flat_ones_are_found():
    a_good, a_bad = _trajectory(0, 1.0, []), _trajectory(0, 0.0, [])
    b_first, b_second = _trajectory(1, 0.5, []), _trajectory(1, 0.5, [])
    groups = episode_groups([a_good, b_first, a_bad, b_second])  # interleaved, as a worker pool may return them
    assert groups == [[a_good, a_bad], [b_first, b_second]]
    assert [is_flat(g) for g in groups] == [False, True]


def test_zero_advantage_samples_are_not_forwarded_without_a_kl_term_and_all_are_with_one():
    mixed, flat = Sample((1,), (2, 3), (-1.0, -1.0), 0.5), Sample((1,), (4,), (-1.0,), 0.0)
    level = Sample((5,), (6,), (-1.0,), -0.0)  # -0.0 is 0 too
    assert samples_to_forward([mixed, flat, level], kl_coef=0.0) == [mixed]
    assert samples_to_forward([mixed, flat, level], kl_coef=0.001) == [mixed, flat, level]  # the KL term moves them
    assert response_tokens([mixed, flat, level]) == 4


def test_turns_without_token_ids_are_refused_with_the_fix():
    scripted = _trajectory(0, 1.0, [_turn(None, None, None)])
    with pytest.raises(ValueError, match="LLM policy"):
        turn_samples([scripted], [0.0])


def test_sample_checks_its_lengths():
    with pytest.raises(ValueError, match="2 logprobs for 1 response tokens"):
        Sample((1,), (2,), (-0.1, -0.2))
    with pytest.raises(ValueError, match="at least one prompt and one response token"):
        Sample((1,), ())


# --- batches and masks -----------------------------------------------------------------------------


def test_masks_cover_response_tokens_only_and_padding_is_on_the_right():
    batch = collate([Sample((1, 2, 3), (4, 5), (-0.4, -0.5), 1.0), Sample((6,), (7,), (-0.7,), -2.0)], pad_token_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert batch.response_mask.tolist() == [[0, 0, 0, 1, 1], [0, 1, 0, 0, 0]]
    np.testing.assert_allclose(batch.sampler_logprobs.numpy(), [[0, 0, 0, -0.4, -0.5], [0, -0.7, 0, 0, 0]])
    assert batch.advantages.tolist() == [[1.0], [-2.0]]
    assert batch.first_response == 1 and batch.num_tokens == 7


def test_micro_batches_fit_the_budget_and_keep_every_sample_once():
    samples = [Sample((1,) * n, (2,)) for n in (1, 7, 3, 3, 2, 12)]
    micro_batches = pack_micro_batches(samples, token_budget=8)
    assert sorted(len(s) for chunk in micro_batches for s in chunk) == sorted(len(s) for s in samples)
    for chunk in micro_batches:
        assert len(chunk) * max(len(s) for s in chunk) <= 8 or len(chunk) == 1
    assert [len(chunk) for chunk in micro_batches] == [1, 1, 2, 2]  # 13 alone (over budget), 8 alone, 4+4, 3+2


# --- loss terms ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "advantage, ratio, loss, clipped",
    [
        (1.0, 0.5, -0.5, False),  # below the floor: a positive advantage keeps the (smaller) unclipped term
        (1.0, 1.1, -1.1, False),
        (1.0, 2.0, -1.28, True),  # above 1 + 0.28: capped, no gradient
        (1.0, 1.25, -1.25, False),  # inside the asymmetric range (a symmetric 0.2 would clip it)
        (-1.0, 0.5, 0.8, True),  # below 1 - 0.2 with a negative advantage: floored, no gradient
        (-1.0, 0.9, 0.9, False),
        (-1.0, 2.0, 2.0, False),  # a negative advantage keeps the larger unclipped loss
    ],
)
def test_clipping_is_asymmetric_and_pessimistic(advantage, ratio, loss, clipped):
    logprobs = torch.tensor([math.log(ratio)], requires_grad=True)
    values, flags, dual = clipped_policy_loss(logprobs, torch.zeros(1), torch.tensor([advantage]))
    assert values.item() == pytest.approx(loss, abs=1e-6)
    assert bool(flags.item()) is clipped and not dual.any()
    values.sum().backward()
    expected_grad = 0.0 if clipped else -advantage * ratio  # d(-A r)/d logp = -A r
    assert logprobs.grad.item() == pytest.approx(expected_grad, abs=1e-6)


def test_dual_clip_caps_the_loss_of_negative_advantages_at_c_times_minus_a():
    """A hand-computed (2, 5) example: both signs of advantage, ratios below, inside and above the clip
    range and above c = 3 (verl's compute_policy_loss gives the same numbers)."""
    ratios = torch.tensor([[0.5, 1.1, 1.5, 2.0, 4.0], [0.5, 1.1, 1.5, 2.0, 4.0]])
    advantages = torch.tensor([[1.0], [-2.0]])
    logprobs = torch.log(ratios).requires_grad_(True)
    values, clipped, dual = clipped_policy_loss(logprobs, torch.zeros(2, 5), advantages, dual_clip=3.0)
    # A = +1: max(-r, -clip(r, 0.8, 1.28)); no cap.      A = -2: max(2r, 2 clip(r)), then at most 2 * 3 = 6.
    expected = [[-0.5, -1.1, -1.28, -1.28, -1.28], [1.6, 2.2, 3.0, 4.0, 6.0]]
    torch.testing.assert_close(values, torch.tensor(expected))
    assert clipped.tolist() == [[False, False, True, True, True], [True, False, False, False, False]]
    assert dual.tolist() == [[False] * 5, [False, False, False, False, True]]  # r = 4 > c: 8 capped to 6
    values.sum().backward()
    # d(-A r)/d log r = -A r where the unclipped term is the loss; 0 where a clip or the cap is.
    torch.testing.assert_close(logprobs.grad, torch.tensor([[-0.5, -1.1, 0.0, 0.0, 0.0], [0.0, 2.2, 3.0, 4.0, 0.0]]))
    uncapped, _, none = clipped_policy_loss(torch.log(ratios), torch.zeros(2, 5), advantages, dual_clip=0.0)
    assert uncapped[1, 4].item() == pytest.approx(8.0) and not none.any()  # 0 turns the cap off
    terms = grpo_token_terms(torch.log(ratios), torch.zeros(2, 5), advantages)  # the default: the reference's 3
    assert terms["dual_clip_frac"].tolist() == dual.float().tolist()
    assert terms["loss"][1, 4].item() == pytest.approx(6.0)


def test_k3_kl_values_and_zero_at_equality():
    logprobs = torch.log(torch.tensor([0.5, 0.5, 0.3]))
    reference = torch.log(torch.tensor([0.25, 0.5, 0.6]))
    kl = k3_kl(logprobs, reference)
    # d = ref - logp: -log 2 -> 0.5 + log 2 - 1; 0 -> 0; log 2 -> 2 - log 2 - 1
    expected = [0.5 + math.log(2) - 1, 0.0, 1 - math.log(2)]
    np.testing.assert_allclose(kl.numpy(), expected, atol=1e-6)


def test_k3_kl_is_bounded_far_from_the_reference():
    kl = k3_kl(torch.tensor([-100.0]), torch.tensor([0.0]))
    assert kl.item() == 10.0 and torch.isfinite(kl).all()


def test_token_mean_averages_over_all_tokens_not_per_sequence():
    values = torch.tensor([[2.0, 9.0, 9.0], [1.0, 1.0, 4.0]])
    mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert token_mean(values, mask).item() == pytest.approx(2.0)  # (2 + 1 + 1 + 4) / 4, not (2 + 2) / 2
    assert token_mean(values, mask, num_tokens=8).item() == pytest.approx(1.0)  # part of a larger step


def test_entropy_of_uniform_and_peaked_distributions():
    logits = torch.tensor([[0.0] * 8, [100.0] + [0.0] * 7])
    np.testing.assert_allclose(entropy_from_logits(logits).numpy(), [math.log(8), 0.0], atol=1e-5)


def test_kl_term_is_added_with_its_coefficient_and_skipped_at_zero():
    logprobs, old = torch.tensor([-1.0, -2.0]), torch.tensor([-1.0, -2.0])
    reference, advantages = torch.tensor([-1.5, -2.0]), torch.tensor([1.0, 1.0])
    plain = grpo_token_terms(logprobs, old, advantages)
    assert "kl" not in plain
    with_kl = grpo_token_terms(logprobs, old, advantages, reference, kl_coef=0.1)
    torch.testing.assert_close(with_kl["loss"], plain["pg_loss"] + 0.1 * k3_kl(logprobs, reference))
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo_token_terms(logprobs, old, advantages, kl_coef=0.1)


# --- properties ------------------------------------------------------------------------------------

rewards_and_groups = st.integers(1, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
    )
)


@given(rewards_and_groups, st.booleans())
def test_every_group_has_mean_zero(data, scale):
    rewards, groups = data
    advantages = group_advantages(rewards, groups, scale_by_std=scale)
    for key in set(groups):
        members = [a for a, g in zip(advantages, groups, strict=True) if g == key]
        assert abs(np.mean(members)) < 1e-6


@given(rewards_and_groups, st.floats(-5, 5))
def test_advantages_ignore_a_reward_offset_shared_by_a_group(data, offset):
    rewards, groups = data
    shifted = [r + offset for r in rewards]
    np.testing.assert_allclose(group_advantages(shifted, groups), group_advantages(rewards, groups), atol=1e-9)


@given(st.lists(st.floats(-3, 3), min_size=2, max_size=20).filter(lambda r: np.std(r) > 1e-2))
def test_std_scaled_groups_have_unit_sample_std(rewards):
    advantages = group_advantages(rewards, [0] * len(rewards), scale_by_std=True)
    assert np.std(advantages, ddof=1) == pytest.approx(1.0, rel=1e-3)


token_rows = st.lists(
    st.tuples(st.floats(-2, 2), st.lists(st.floats(-5, 0), min_size=1, max_size=6)), min_size=1, max_size=5
)


def _padded(rows):
    """(advantage, logprobs) rows -> padded logprobs (B, T), advantages (B, 1), mask (B, T)."""
    width = max(len(lp) for _, lp in rows)
    logprobs = torch.zeros(len(rows), width, dtype=torch.float64)
    mask = torch.zeros_like(logprobs)
    for i, (_, lp) in enumerate(rows):
        logprobs[i, : len(lp)] = torch.tensor(lp, dtype=torch.float64)
        mask[i, : len(lp)] = 1.0
    advantages = torch.tensor([[a] for a, _ in rows], dtype=torch.float64)
    return logprobs, advantages, mask


@given(token_rows)
def test_loss_at_ratio_one_is_minus_the_token_mean_advantage(rows):
    logprobs, advantages, mask = _padded(rows)
    terms = grpo_token_terms(logprobs, logprobs.clone(), advantages)
    expected = -sum(a * len(lp) for a, lp in rows) / sum(len(lp) for _, lp in rows)
    assert token_mean(terms["loss"], mask).item() == pytest.approx(expected, abs=1e-9)
    assert token_mean(terms["clip_frac"], mask).item() == 0.0


@given(token_rows, st.floats(-3, 3))
def test_clipped_loss_is_never_below_the_unclipped_surrogate_and_dual_clip_only_caps_it(rows, shift):
    logprobs, advantages, mask = _padded(rows)
    old = logprobs + shift
    pessimistic, _, _ = clipped_policy_loss(logprobs, old, advantages, dual_clip=0.0)
    unclipped = -advantages * torch.exp(logprobs - old)
    assert bool(((pessimistic - unclipped) * mask >= -1e-9).all())
    capped, _, dual = clipped_policy_loss(logprobs, old, advantages, dual_clip=3.0)
    expected = torch.where(advantages < 0, torch.minimum(pessimistic, -3.0 * advantages), pessimistic)
    torch.testing.assert_close(capped, expected)
    assert not bool((dual & (advantages >= 0)).any())


@given(st.lists(st.tuples(st.floats(-8, 0), st.floats(-8, 0)), min_size=1, max_size=20))
@example(pairs=[(-1.486422757108841e-10, 0.0)])  # exp(d) - d - 1 cancelled to below zero here
def test_k3_kl_is_never_negative(pairs):
    logprobs = torch.tensor([p for p, _ in pairs], dtype=torch.float64)
    reference = torch.tensor([r for _, r in pairs], dtype=torch.float64)
    assert bool((k3_kl(logprobs, reference) >= 0).all())


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), min_size=1, max_size=12), st.integers(1, 40))
def test_micro_batches_partition_the_samples(lengths, budget):
    samples = [Sample((i,) * p, (i,) * r) for i, (p, r) in enumerate(lengths)]
    micro_batches = pack_micro_batches(samples, budget)
    assert sorted(s.prompt_ids[0] for chunk in micro_batches for s in chunk) == list(range(len(samples)))
    assert all(len(chunk) == 1 or len(chunk) * max(map(len, chunk)) <= budget for chunk in micro_batches)
