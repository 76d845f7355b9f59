"""The learner on a tiny randomly initialized Llama built in-process (no downloads, CPU)."""

import copy
import math
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from agents.training.batching import collate  # noqa: E402
from agents.training.grpo import Sample, group_advantages  # noqa: E402
from agents.training.learner import Learner, LearnerConfig, LoraSettings, schedule_factor, token_logprobs  # noqa: E402
from atommem_env.errors import ConfigError, DependencyError  # noqa: E402

VOCAB = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    return transformers.LlamaForCausalLM(config)


@torch.no_grad()
def sample_responses(model, prompt, count, length, generator):
    """``count`` responses of ``length`` tokens sampled at temperature 1, with their logprobs."""
    ids = torch.tensor([prompt] * count)
    logprobs = []
    for _ in range(length):
        step = torch.log_softmax(model(input_ids=ids).logits[:, -1].float(), dim=-1)
        token = torch.multinomial(step.exp(), 1, generator=generator)
        logprobs.append(step.gather(-1, token))
        ids = torch.cat([ids, token], dim=1)
    return ids[:, len(prompt):].tolist(), torch.cat(logprobs, dim=1).tolist()


def random_samples(count=6, seed=0, with_logprobs=True):
    """Samples of varied prompt and response lengths with made-up logprobs and advantages."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(count):
        prompt = tuple(torch.randint(1, VOCAB, (2 + (3 * i) % 7,), generator=generator).tolist())
        response = tuple(torch.randint(1, VOCAB, (1 + (2 * i) % 5,), generator=generator).tolist())
        # Near log(1/64) but not equal to the model's logprobs, so ratios differ from 1 and some clip.
        logprobs = tuple((-4.0 - torch.rand(len(response), generator=generator)).tolist())
        advantage = (-1.0) ** i * (i + 1) / 3
        samples.append(Sample(prompt, response, logprobs if with_logprobs else None, advantage))
    return samples


def grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


CPU_FAST = dict(lr=1e-3, warmup_steps=0, kl_coef=0.0)


def test_an_sft_step_changes_parameters_and_lowers_the_loss_on_the_batch():
    model = tiny_model()
    before = copy.deepcopy(model.state_dict())
    learner = Learner(model, LearnerConfig(**CPU_FAST))
    samples = random_samples(with_logprobs=False)
    first = learner.sft_step(samples)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    second = learner.sft_step(samples)
    assert second["loss"] < first["loss"]
    assert first["response_tokens"] == sum(len(s.response_ids) for s in samples)
    assert {"entropy", "grad_norm", "lr", "tokens_per_s", "micro_batches"} <= set(first)


@pytest.mark.parametrize("objective", ["grpo", "sft"])
def test_accumulated_gradient_does_not_depend_on_the_micro_batch_split(objective):
    samples = random_samples(count=8)
    whole = Learner(tiny_model(), LearnerConfig(**CPU_FAST, micro_batch_tokens=10_000))
    split = Learner(tiny_model(), LearnerConfig(**CPU_FAST, micro_batch_tokens=12))
    one = whole.compute_gradients(samples, objective)
    many = split.compute_gradients(samples, objective)
    assert one["micro_batches"] == 1 and many["micro_batches"] >= 4
    assert many["loss"] == pytest.approx(one["loss"], rel=1e-5)
    if objective == "grpo":
        assert 0 < one["clip_frac"] < 1 and many["clip_frac"] == pytest.approx(one["clip_frac"])
    expected, actual = grads(whole.model), grads(split.model)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=1e-4)


def test_the_sft_loss_is_the_token_mean_nll_of_response_tokens():
    model = tiny_model()
    samples = random_samples(count=3, with_logprobs=False)
    metrics = Learner(model, LearnerConfig(**CPU_FAST)).compute_gradients(samples, "sft")
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for s in samples:  # one sample at a time, no padding, plain log_softmax over full logits
            ids = torch.tensor([s.prompt_ids + s.response_ids])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], dim=-1)
            targets = ids[0, 1:]
            picked = logp[torch.arange(len(targets)), targets][len(s.prompt_ids) - 1:]
            nll, tokens = nll - picked.sum().item(), tokens + len(picked)
    assert metrics["loss"] == pytest.approx(nll / tokens, rel=1e-5)


def reference_nll_sums(model, samples):
    """(response NLL sum, response tokens, prompt NLL sum, prompt tokens scored): one sample at a time,
    no padding, plain log_softmax over full logits (a prompt's first token has nothing before it)."""
    response_nll = prompt_nll = 0.0
    response_count = prompt_count = 0
    for s in samples:
        ids = torch.tensor([s.prompt_ids + s.response_ids])
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], dim=-1)
        picked = logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]]
        split = len(s.prompt_ids) - 1
        response_nll, response_count = response_nll - picked[split:].sum(), response_count + len(picked) - split
        prompt_nll, prompt_count = prompt_nll - picked[:split].sum(), prompt_count + split
    return response_nll, response_count, prompt_nll, prompt_count


@pytest.mark.parametrize("micro_batch_tokens", [10_000, 12])
def test_a_prompt_loss_weight_adds_the_weighted_prompt_nll_to_the_sft_objective(micro_batch_tokens):
    samples = random_samples(count=4, with_logprobs=False)
    weight = 0.3
    learner = Learner(tiny_model(), LearnerConfig(**CPU_FAST, prompt_loss_weight=weight,
                                                  micro_batch_tokens=micro_batch_tokens))
    metrics = learner.compute_gradients(samples, "sft")
    expected = tiny_model()
    response_nll, response_count, prompt_nll, prompt_count = reference_nll_sums(expected, samples)
    ((response_nll + weight * prompt_nll) / response_count).backward()
    # The reported loss stays the response tokens' mean; the prompt's mean is reported beside it.
    assert metrics["loss"] == pytest.approx(response_nll.item() / response_count, rel=1e-5)
    assert metrics["prompt_loss"] == pytest.approx(prompt_nll.item() / prompt_count, rel=1e-5)
    got = grads(learner.model)
    for name, grad in grads(expected).items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6)


def test_without_a_prompt_loss_weight_prompts_add_no_gradient_and_no_metric():
    samples = random_samples(count=3, with_logprobs=False)
    learner = Learner(tiny_model(), LearnerConfig(**CPU_FAST))
    metrics = learner.compute_gradients(samples, "sft")
    expected = tiny_model()
    response_nll, response_count, _, _ = reference_nll_sums(expected, samples)
    (response_nll / response_count).backward()
    assert "prompt_loss" not in metrics
    got = grads(learner.model)
    for name, grad in grads(expected).items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6)


def test_grpo_ignores_the_prompt_loss_weight():
    samples = random_samples(count=4)
    plain = Learner(tiny_model(), LearnerConfig(**CPU_FAST)).compute_gradients(samples, "grpo")
    weighted = Learner(tiny_model(), LearnerConfig(**CPU_FAST, prompt_loss_weight=1.0)).compute_gradients(
        samples, "grpo")
    assert weighted == pytest.approx(plain, nan_ok=True)


class FullLogitsOnly(torch.nn.Module):
    """A model whose forward takes only input_ids and attention_mask (no logits_to_keep, no use_cache)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask=None):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def test_logprobs_ignore_padding_temperature_divides_logits_and_any_hf_like_model_works():
    model = tiny_model().eval()
    short, long = random_samples(count=6)[0], random_samples(count=6)[5]
    alone = collate([short])
    padded = collate([short, long])
    with torch.no_grad():
        lp_alone, _ = token_logprobs(model, alone, temperature=0.7)
        lp_padded, _ = token_logprobs(model, padded, temperature=0.7)
        lp_plain, _ = token_logprobs(FullLogitsOnly(model), padded, temperature=0.7)
        full = torch.log_softmax(model(input_ids=alone.input_ids).logits[0, :-1] / 0.7, dim=-1)
    width = len(short)
    torch.testing.assert_close(lp_padded[0, :width], lp_alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lp_plain, lp_padded)
    start = len(short.prompt_ids)
    manual = full[torch.arange(start - 1, width - 1), alone.input_ids[0, start:]]
    torch.testing.assert_close(lp_alone[0, start:], manual, atol=1e-5, rtol=1e-5)


def test_whole_sequence_scores_prompt_tokens_too_and_leaves_response_scores_and_entropy_unchanged():
    model = tiny_model().eval()
    batch = collate(random_samples(count=6)[:3])
    with torch.no_grad():
        lp, entropy = token_logprobs(model, batch, with_entropy=True)
        lp_all, entropy_all = token_logprobs(model, batch, with_entropy=True, whole_sequence=True)
        full = torch.log_softmax(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, -1)
    first = batch.first_response
    torch.testing.assert_close(lp_all[:, first:], lp[:, first:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy_all, entropy)  # entropy only where a response token can be
    assert not entropy[:, :first].any() and entropy[:, first:].gt(0).any()
    prompt_scores = full[:, :first - 1].gather(-1, batch.input_ids[:, 1:first, None]).squeeze(-1)
    torch.testing.assert_close(lp_all[:, 1:first], prompt_scores, atol=1e-5, rtol=1e-5)
    assert not lp_all[:, 0].any() and not lp[:, :first].any()


def test_grpo_raises_the_reward_of_a_tiny_model():
    """Toy task: reward = share of sampled tokens equal to TARGET; GRPO (kl 0) must learn to say it."""
    target, prompts, group, length = 7, [(1, 2, 3), (4, 5, 6, 7)], 8, 8
    model = tiny_model(seed=0)
    learner = Learner(model, LearnerConfig(lr=2e-2, warmup_steps=0, kl_coef=0.0, weight_decay=0.0))
    generator = torch.Generator().manual_seed(0)

    def reward(response):
        return sum(token == target for token in response) / len(response)

    def mean_reward(seed):
        rewards = []
        for prompt in prompts:
            responses, _ = sample_responses(model, prompt, 32, length, torch.Generator().manual_seed(seed))
            rewards += [reward(r) for r in responses]
        return sum(rewards) / len(rewards)

    before = mean_reward(seed=123)
    for _ in range(12):
        rollouts = [(p, r, lp) for p in prompts
                    for r, lp in zip(*sample_responses(model, p, group, length, generator), strict=True)]
        rewards = [reward(r) for _, r, _ in rollouts]
        advantages = group_advantages(rewards, [p for p, _, _ in rollouts])
        learner.grpo_step([Sample(p, tuple(r), tuple(lp), a)
                           for (p, r, lp), a in zip(rollouts, advantages, strict=True)])
    after = mean_reward(seed=123)
    assert before < 0.05 and after > 0.5, (before, after)  # measured: 0.018 -> 0.92


class Exploding(torch.nn.Module):
    def forward(self, *args, **kwargs):
        raise AssertionError("the reference model must not run when kl_coef == 0")


def test_kl_coefficient_zero_never_runs_the_reference():
    learner = Learner(tiny_model(), LearnerConfig(**CPU_FAST), reference=Exploding())
    metrics = learner.grpo_step(random_samples())
    assert "kl" not in metrics and learner.reference is None


def test_a_positive_kl_coefficient_runs_a_frozen_reference():
    model = tiny_model()
    reference = copy.deepcopy(model)
    calls = []
    reference.register_forward_hook(lambda *_: calls.append(1))
    learner = Learner(model, LearnerConfig(**{**CPU_FAST, "kl_coef": 0.1}), reference=reference)
    first = learner.grpo_step(random_samples())
    second = learner.grpo_step(random_samples())
    assert len(calls) == 2
    assert first["kl"] == pytest.approx(0.0, abs=1e-9) and second["kl"] > 0  # the policy moved away
    assert not any(p.requires_grad for p in reference.parameters()) and not reference.training


def test_a_positive_kl_coefficient_without_a_reference_says_how_to_fix_it():
    with pytest.raises(ConfigError, match="reference="):
        Learner(tiny_model(), LearnerConfig(kl_coef=0.001))


def test_grpo_refuses_samples_without_sampling_logprobs():
    learner = Learner(tiny_model(), LearnerConfig(**CPU_FAST))
    with pytest.raises(ValueError, match="sft_step"):
        learner.grpo_step(random_samples(with_logprobs=False))


def test_learning_rate_warms_up_linearly_then_stays_constant():
    assert [schedule_factor(4)(step) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    learner = Learner(tiny_model(), LearnerConfig(lr=1e-3, warmup_steps=2, kl_coef=0.0))
    lrs = [learner.sft_step(random_samples(count=2))["lr"] for _ in range(3)]
    assert lrs == pytest.approx([5e-4, 1e-3, 1e-3])


def test_learning_rate_decays_on_a_cosine_after_warm_up_to_its_floor():
    factors = [schedule_factor(2, decay_steps=4, min_ratio=0.1)(step) for step in range(8)]
    assert factors[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert factors[3] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert factors[4] == pytest.approx(0.55)
    assert factors[6:] == pytest.approx([0.1, 0.1])
    assert all(a >= b for a, b in zip(factors[1:-1], factors[2:], strict=True))
    learner = Learner(tiny_model(), LearnerConfig(lr=1e-3, warmup_steps=0, decay_steps=2, min_lr_ratio=0.0,
                                                  kl_coef=0.0))
    lrs = [learner.sft_step(random_samples(count=2))["lr"] for _ in range(3)]
    assert lrs == pytest.approx([1e-3, 5e-4, 0.0], abs=1e-12)


def test_gradients_are_clipped_to_the_maximum_norm():
    learner = Learner(tiny_model(), LearnerConfig(**CPU_FAST, max_grad_norm=1e-3))
    metrics = learner.sft_step(random_samples())
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in learner.trainable]))
    assert metrics["grad_norm"] > 1e-3 and norm.item() == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("lr", 0.0, "lr=0.0 must be positive"),
        ("warmup_steps", -1, "warmup_steps=-1"),
        ("clip_low", 1.0, "clip_low=1.0 must be in \\(0, 1\\)"),
        ("clip_high", 0.0, "clip_high=0.0 must be positive"),
        ("kl_coef", -0.1, "kl_coef=-0.1"),
        ("micro_batch_tokens", 0, "micro_batch_tokens=0"),
        ("temperature", 0.0, "temperature=0.0"),
        ("max_grad_norm", 0.0, "max_grad_norm=0.0"),
        ("betas", (0.9, 1.0), "betas="),
        ("weight_decay", -1.0, "weight_decay=-1.0"),
        ("pad_token_id", -1, "pad_token_id=-1"),
        ("decay_steps", -1, "decay_steps=-1"),
        ("min_lr_ratio", 1.5, "min_lr_ratio=1.5"),
        ("prompt_loss_weight", -0.5, "prompt_loss_weight=-0.5"),
        ("lora", LoraSettings(r=0), "lora.r=0"),
        ("lora", LoraSettings(dropout=1.0), "lora.dropout=1.0"),
        ("lora", LoraSettings(target_modules=()), "lora.target_modules is empty"),
    ],
)
def test_invalid_settings_name_the_value_and_the_fix(field, value, message):
    with pytest.raises(ConfigError, match=message):
        LearnerConfig(**{field: value})


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        LearnerConfig(lr=-1.0, clip_low=2.0)
    assert "lr=-1.0" in str(error.value) and "clip_low=2.0" in str(error.value)


def test_lora_without_peft_raises_a_dependency_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # makes `import peft` fail
    with pytest.raises(DependencyError, match="pip install"):
        Learner(tiny_model(), LearnerConfig(**CPU_FAST, lora=LoraSettings(r=4)))


def test_lora_trains_adapters_only_and_uses_the_base_model_as_reference():
    pytest.importorskip("peft", reason="peft is not installed (pip install 'atommem[train]')")
    model = tiny_model()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    learner = Learner(model, LearnerConfig(lr=1e-2, warmup_steps=0, kl_coef=0.1, lora=LoraSettings(r=4)))
    names = [name for name, p in learner.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in name for name in names)
    first = learner.grpo_step(random_samples())
    second = learner.grpo_step(random_samples())
    # LoRA's B matrices start at zero, so the adapted model starts equal to its base (the reference).
    assert first["kl"] == pytest.approx(0.0, abs=1e-9) and second["kl"] > 0
    merged = learner.model.get_base_model()
    frozen = {k: v for k, v in merged.state_dict().items() if "lora_" not in k}
    assert all(torch.equal(v, base[k.replace(".base_layer", "")]) for k, v in frozen.items())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_model_runs_in_bf16_and_the_loss_in_float32():
    model = tiny_model().cuda()
    dtypes = []
    model.lm_head.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    learner = Learner(model, LearnerConfig(**{**CPU_FAST, "kl_coef": 0.1}), reference=copy.deepcopy(model))
    metrics = learner.grpo_step(random_samples())
    assert dtypes == [torch.bfloat16]
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
