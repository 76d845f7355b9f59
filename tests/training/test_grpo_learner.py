"""The GRPO learner beyond the loss formula (tests/training/test_grpo.py): which old logprobs the ratio
uses (the sampler's, or the learner's own recomputation), the sampler/learner mismatch it logs, dual
clipping inside a step, and the samples it never forwards. A tiny random Llama on the CPU."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.training.batching import collate  # noqa: E402
from agents.training.grpo import Sample, response_tokens, samples_to_forward  # noqa: E402
from agents.training.learner import Learner, LearnerConfig, token_logprobs  # noqa: E402
from tests.training.test_learner import CPU_FAST, grads, random_samples, tiny_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

PROMPTS = [[3, 4, 5, 6, 7], [8, 9, 10], [11, 12, 13, 14, 15, 16, 17], [18, 19, 20, 21]]
ADVANTAGES = [1.0, -0.5, 0.25, -1.0]


def sample_from(tiny_lm_path, dtype="float32"):
    """Samples drawn by the hf sampler (the policy GRPORun and the hf engine use) from the tiny Llama
    loaded in ``dtype``, and that model."""
    from agents.hf_policy import TransformersPolicy
    from agents.models import load_causal_lm

    model, tokenizer = load_causal_lm(tiny_lm_path, "cpu", dtype=dtype)
    sampler = TransformersPolicy.from_model(model, tokenizer, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=3,
                                            cache_size=0)
    drawn = sampler.generate(PROMPTS)
    samples = [Sample(tuple(prompt), tuple(ids), tuple(logprobs), advantage)
               for prompt, (ids, logprobs), advantage in zip(PROMPTS, drawn, ADVANTAGES, strict=True)]
    return samples, model


def learner_for(model, **settings):
    return Learner(copy.deepcopy(model), LearnerConfig(**{**CPU_FAST, "pad_token_id": 1, **settings}))


def shifted(samples, by):
    """The samples as a sampler that computes differently would report them: every logprob off by ``by``."""
    return [replace(s, logprobs=tuple(lp + by for lp in s.logprobs)) for s in samples]


def own_logprobs(model, samples):
    """The samples with their logprobs replaced by a separate no-grad forward pass of ``model``."""
    batch = collate(samples, pad_token_id=1)
    with torch.no_grad():
        logprobs, _ = token_logprobs(model, batch)
    return [replace(s, logprobs=tuple(logprobs[row, len(s.prompt_ids):len(s)].tolist()))
            for row, s in enumerate(samples)]


@pytest.fixture(scope="module")
def sampled(tiny_lm_path):
    return sample_from(tiny_lm_path)


def test_the_learner_recomputes_the_float32_hf_samplers_logprobs_and_logs_no_mismatch(sampled):
    samples, model = sampled
    assert response_tokens(samples) > len(samples)  # real multi-token responses
    recomputed = own_logprobs(model, samples)
    for drawn, again in zip(samples, recomputed, strict=True):  # same engine, same precision: equal up to rounding
        assert again.logprobs == pytest.approx(drawn.logprobs, abs=1e-5)
    metrics = learner_for(model).grpo_step(samples)
    assert metrics["sampler_abs_log_ratio"] < 1e-5 and metrics["clip_frac"] == 0.0


def test_the_logged_mismatch_shows_a_sampler_that_computes_differently(sampled, tiny_lm_path):
    samples, model = sampled
    assert learner_for(model).grpo_step(shifted(samples, 0.3))["sampler_abs_log_ratio"] == pytest.approx(0.3, abs=1e-4)
    bf16_samples, _ = sample_from(tiny_lm_path, dtype="bfloat16")  # a bfloat16 sampler, a float32 learner
    mismatch = learner_for(model).grpo_step(bf16_samples)["sampler_abs_log_ratio"]
    assert 3e-5 < mismatch < 0.5  # 3.4e-4 measured here; float32 samplers are near 1e-7


def test_recomputed_old_logprobs_are_a_separate_forward_pass_and_ignore_the_samplers(sampled):
    samples, model = sampled
    off = shifted(samples, -0.5)  # a sampler 0.5 nats off: the ratio exp(0.5) is clipped where A > 0
    recomputing = learner_for(model, recompute_old_logprobs=True)
    metrics = recomputing.compute_gradients(off, "grpo")
    separate = learner_for(model)  # the sampler's logprobs replaced by the learner's own, as verl recomputes them
    expected = separate.compute_gradients(own_logprobs(model, samples), "grpo")
    assert metrics["clip_frac"] == 0.0 and metrics["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert metrics["sampler_abs_log_ratio"] == pytest.approx(0.5, abs=1e-4)  # the mismatch is still logged
    got, want = grads(recomputing.model), grads(separate.model)
    assert got.keys() == want.keys() and all(torch.allclose(got[k], want[k], rtol=1e-5, atol=1e-7) for k in got)
    trusting = learner_for(model)  # the sampler's logprobs as old: the mismatch is clipped away
    assert trusting.compute_gradients(off, "grpo")["clip_frac"] > 0


def test_dual_clip_caps_negative_advantages_far_off_policy_and_stops_their_gradient():
    # Logprobs of -12 under a sampler against about log(1/64) = -4.2 here: ratios near e^8, far above c = 3.
    samples = [replace(s, logprobs=(-12.0,) * len(s.response_ids), advantage=-1.0) for s in random_samples(4)]
    capped = Learner(tiny_model(), LearnerConfig(**CPU_FAST, dual_clip=3.0)).grpo_step(samples)
    assert capped["loss"] == pytest.approx(3.0) and capped["dual_clip_frac"] == 1.0 and capped["grad_norm"] == 0.0
    free = Learner(tiny_model(), LearnerConfig(**CPU_FAST, dual_clip=0.0)).grpo_step(samples)
    assert free["loss"] > 100 and free["dual_clip_frac"] == 0.0 and free["grad_norm"] > 0


def counting_forwards(learner):
    """Record the rows (prompt + response tokens, padding dropped) of every forward call of the model."""
    rows = []

    def record(module, args, kwargs):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        rows.extend(tuple(row[m.bool()].tolist()) for row, m in zip(ids, mask, strict=True))

    learner.model.register_forward_pre_hook(record, with_kwargs=True)
    return rows


def with_flat_samples():
    signal = random_samples(4)
    flat = [replace(s, advantage=0.0) for s in random_samples(3, seed=1)]
    return signal, [signal[0], flat[0], signal[1], flat[1], signal[2], flat[2], signal[3]]


def test_zero_advantage_samples_are_never_forwarded_and_change_neither_loss_nor_gradient():
    signal, mixed = with_flat_samples()
    skipping = Learner(tiny_model(), LearnerConfig(**CPU_FAST))
    rows = counting_forwards(skipping)
    metrics = skipping.grpo_step(mixed)
    assert sorted(rows) == sorted(s.prompt_ids + s.response_ids for s in signal)  # only the 4 with a signal
    assert metrics["skipped_samples"] == 3 and metrics["forwarded_tokens"] == response_tokens(signal)
    assert metrics["response_tokens"] == response_tokens(mixed)  # the token-mean still spans the whole step
    forwarding = Learner(tiny_model(), LearnerConfig(**CPU_FAST))  # the same step, every sample forwarded
    expected = forwarding.compute_gradients(mixed, "grpo")
    expected.update(forwarding.apply_gradients())
    for key in ("loss", "pg_loss", "clip_frac", "dual_clip_frac", "grad_norm"):
        assert metrics[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-12), key
    after = dict(forwarding.model.named_parameters())
    for name, parameter in skipping.model.named_parameters():
        torch.testing.assert_close(parameter, after[name], rtol=1e-6, atol=1e-9)


def test_with_a_kl_term_zero_advantage_samples_are_forwarded_for_their_kl_gradient():
    _, mixed = with_flat_samples()
    model = tiny_model()
    learner = Learner(model, LearnerConfig(**{**CPU_FAST, "kl_coef": 0.1}), reference=copy.deepcopy(model))
    rows = counting_forwards(learner)
    metrics = learner.grpo_step(mixed)
    assert metrics["skipped_samples"] == 0 and len(rows) == len(mixed)
    assert samples_to_forward(mixed, kl_coef=0.1) == mixed


def test_a_step_without_signal_forwards_nothing_and_steps_the_optimizer_on_a_zero_gradient():
    flat = [replace(s, advantage=0.0) for s in random_samples(3)]
    skipping = Learner(tiny_model(), LearnerConfig(**CPU_FAST))
    rows = counting_forwards(skipping)
    metrics = skipping.grpo_step(flat)
    assert rows == [] and metrics["micro_batches"] == 0 and metrics["loss"] == 0.0 and metrics["grad_norm"] == 0.0
    assert math.isnan(metrics["entropy"]) and math.isnan(metrics["sampler_abs_log_ratio"])  # nothing measured
    forwarding = Learner(tiny_model(), LearnerConfig(**CPU_FAST))
    forwarding.compute_gradients(flat, "grpo")  # forwarded: an all-zero gradient
    forwarding.apply_gradients()
    assert skipping.steps == forwarding.steps == 1  # the schedule moves on as it would have
    after = dict(forwarding.model.named_parameters())
    assert all(torch.equal(p, after[name]) for name, p in skipping.model.named_parameters())  # AdamW alike
    assert skipping.grpo_step([])["response_tokens"] == 0  # dynamic sampling may leave a step no group


@pytest.mark.parametrize("value", [1.0, 0.5, -3.0])
def test_a_dual_clip_bound_of_one_or_less_is_refused(value):
    from atommem_env.errors import ConfigError

    with pytest.raises(ConfigError, match=f"dual_clip={value} must be above 1"):
        LearnerConfig(dual_clip=value)
