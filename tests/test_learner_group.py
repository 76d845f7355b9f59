"""experiments/learner_group.py: two learner ranks over gloo end with identical weights equal to one
learner's update on the same batch; a dead rank stops the group with the checkpoint intact."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch", reason="learners need torch (pip install -e '.[train]')")
pytest.importorskip("transformers", reason="learners need transformers (pip install -e '.[train]')")

from experiments.grpo import Sample  # noqa: E402
from experiments.learner_group import LearnerFailure, LearnerGroup, LearnerSpec, all_reduce_gradients  # noqa: E402
from experiments.placement import plan_placement  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

CONFIG = {"lr": 1e-2, "warmup_steps": 0, "kl_coef": 0.0, "micro_batch_tokens": 40, "temperature": 1.0}


def samples(count=7, seed=0):
    """Samples of different lengths and advantages (the shards get unequal token counts)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        prompt = tuple(rng.randrange(3, 30) for _ in range(rng.randrange(3, 9)))
        response = tuple(rng.randrange(3, 30) for _ in range(rng.randrange(1, 6)))
        out.append(Sample(prompt, response, tuple(-3.0 + rng.random() for _ in response), rng.uniform(-1, 1)))
    return out


@pytest.fixture
def group_of(ray_session, tiny_lm_path):
    from experiments.ray_workers import create_placement_groups

    made = []

    def build(ranks):
        plan = plan_placement(0, num_learners=ranks)
        groups = create_placement_groups(plan, timeout_s=60)
        group = LearnerGroup(LearnerSpec(model=tiny_lm_path, device="cpu", config=CONFIG), plan, groups)
        made.append((group, groups))
        return group

    yield build
    for group, groups in made:
        group.shutdown()
        for placement in groups:
            ray_session.util.remove_placement_group(placement)


def one_learner(path):
    from agents.models import load_causal_lm
    from experiments.learner import Learner, LearnerConfig

    model, tokenizer = load_causal_lm(path, "cpu", dtype="float32")
    return Learner(model, LearnerConfig(**CONFIG, pad_token_id=tokenizer.pad_token_id))


@pytest.mark.slow
def test_two_ranks_keep_identical_weights_equal_to_one_learners_update(group_of, tiny_lm_path):
    batch = samples()
    single = one_learner(tiny_lm_path)
    expected = single.grpo_step(batch)
    group = group_of(2)
    metrics = group.update(batch)
    rank0, rank1 = group.parameters()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # every rank applies the same summed gradient
    reference = {k: p.detach() for k, p in single.model.named_parameters()}
    moved = max(float((reference[k] - p).abs().max()) for k, p in one_learner(tiny_lm_path).model.named_parameters())
    assert moved > 1e-3  # the update is large enough for the comparison to mean something
    for name, value in rank0.items():
        torch.testing.assert_close(value, reference[name], rtol=1e-5, atol=1e-6)
    for key in ("loss", "pg_loss", "clip_frac", "entropy", "grad_norm", "response_tokens"):
        assert metrics[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key


@pytest.mark.slow
def test_a_dead_rank_stops_the_group_and_the_checkpoint_stays_loadable(group_of, tiny_lm_path, tmp_path, ray_session):
    from experiments.checkpoint import latest_checkpoint, load_checkpoint

    group = group_of(2)
    group.update(samples(4))
    saved = group.save(tmp_path, 1, {"step": 1, "version": 1})
    ray_session.kill(group.actors[1])
    with pytest.raises(LearnerFailure, match="continue with --resume"):
        group.update(samples(4, seed=1))  # rank 0 would wait in the all-reduce for rank 1 forever
    assert group.actors == []  # every rank was stopped
    assert str(latest_checkpoint(tmp_path)) == saved
    step, state = load_checkpoint(saved, one_learner(tiny_lm_path))
    assert step == 1 and state == {"step": 1, "version": 1}


def test_a_single_process_all_reduce_leaves_gradients_and_fills_missing_ones(monkeypatch):
    import torch.distributed as dist

    calls = []
    monkeypatch.setattr(dist, "all_reduce", lambda flat: calls.append(flat.numel()))
    a = torch.nn.Parameter(torch.ones(3))
    b = torch.nn.Parameter(torch.ones(2, 2))
    c = torch.nn.Parameter(torch.ones(5))
    a.grad = torch.arange(3.0)
    b.grad = torch.full((2, 2), 2.0)
    all_reduce_gradients([a, b, c], bucket_elements=7)
    assert calls == [7, 5]  # a and b share a bucket; c does not fit in it
    assert torch.equal(a.grad, torch.arange(3.0)) and torch.equal(b.grad, torch.full((2, 2), 2.0))
    assert torch.equal(c.grad, torch.zeros(5))  # a rank with no samples still sends zeros
