"""agents/training/ray/learner_group.py: two learner ranks over gloo end with identical weights equal to one
learner's update on the same batch, replicated or sharded (FSDP, with uneven and empty shards); a
sharded group resumes exactly; a dead rank stops the group with the checkpoint intact."""

from __future__ import annotations

import copy
import json
import random
import time

import pytest

torch = pytest.importorskip("torch", reason="learners need torch (pip install -e '.[train]')")
pytest.importorskip("transformers", reason="learners need transformers (pip install -e '.[train]')")

from agents.training.batching import pack_micro_batches  # noqa: E402
from agents.training.grpo import Sample  # noqa: E402
from agents.training.ray.learner_group import LearnerFailure, LearnerGroup, LearnerSpec, all_reduce_gradients  # noqa: E402
from agents.training.ray.placement import plan_placement  # noqa: E402

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
    from agents.training.ray.cluster import create_placement_groups

    made = []

    def build(ranks, strategy="replicate", config=CONFIG):
        plan = plan_placement(0, num_learners=ranks)
        groups = create_placement_groups(plan, timeout_s=60)
        spec = LearnerSpec(model=tiny_lm_path, device="cpu", config=config, strategy=strategy)
        group = LearnerGroup(spec, plan, groups)
        made.append((group, groups))
        return group

    def release(group):
        """Stop a group and free its CPUs before the test builds the next (four in this Ray session)."""
        [(_, groups)] = [entry for entry in made if entry[0] is group]
        made.remove((group, groups))
        group.shutdown()
        for placement in groups:
            ray_session.util.remove_placement_group(placement)

    build.release = release
    yield build
    for group, groups in made:
        group.shutdown()
        for placement in groups:
            ray_session.util.remove_placement_group(placement)


def one_learner(path, config=CONFIG):
    from agents.models import load_causal_lm
    from agents.training.learner import Learner, LearnerConfig

    model, tokenizer = load_causal_lm(path, "cpu", dtype="float32")
    reference = copy.deepcopy(model) if config["kl_coef"] > 0 else None
    return Learner(model, LearnerConfig(**config, pad_token_id=tokenizer.pad_token_id), reference=reference)


@pytest.mark.slow
def test_two_ranks_keep_identical_weights_equal_to_one_learners_update(group_of, tiny_lm_path):
    flat = [Sample(s.prompt_ids, s.response_ids, s.logprobs, 0.0) for s in samples(3, seed=5)]  # never forwarded
    batch = samples() + flat
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
    for key in ("loss", "pg_loss", "clip_frac", "dual_clip_frac", "entropy", "sampler_abs_log_ratio", "grad_norm",
                "response_tokens", "forwarded_tokens", "skipped_samples"):
        assert metrics[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key
    assert metrics["skipped_samples"] == 3 and metrics["forwarded_tokens"] < metrics["response_tokens"]


@pytest.mark.slow
def test_a_dead_rank_stops_the_group_and_the_checkpoint_stays_loadable(group_of, tiny_lm_path, tmp_path, ray_session):
    from agents.training.checkpoint import latest_checkpoint, load_checkpoint

    group = group_of(2)
    group.update(samples(4))
    saved = group.save(tmp_path, 1, {"step": 1, "version": 1})
    ray_session.kill(group.actors[1])
    with pytest.raises(LearnerFailure, match=r"A learner rank died \(ActorDiedError\)"):
        group.update(samples(4, seed=1))  # rank 0 would wait in the all-reduce for rank 1 forever
    assert group.actors == []  # every rank was stopped
    assert str(latest_checkpoint(tmp_path)) == saved
    step, state = load_checkpoint(saved, one_learner(tiny_lm_path))
    assert step == 1 and state == {"step": 1, "version": 1}


@pytest.mark.slow
def test_a_check_while_the_ranks_are_idle_finds_a_dead_rank_at_once(group_of, ray_session):
    group = group_of(1)
    group.check()  # alive (perhaps still loading): returns at once
    ray_session.get(group.actors[0].pid.remote())
    group.check()
    ray_session.kill(group.actors[0])
    with pytest.raises(LearnerFailure, match="A learner rank died"):
        for _ in range(100):  # the kill takes a moment to be seen
            group.check()
            time.sleep(0.1)
    assert group.actors == []


@pytest.mark.slow
def test_a_rank_that_cannot_start_is_reported_with_its_error(ray_session, tmp_path):
    from agents.training.ray.cluster import create_placement_groups

    plan = plan_placement(0, num_learners=1)
    groups = create_placement_groups(plan, timeout_s=60)
    group = LearnerGroup(LearnerSpec(model=str(tmp_path / "no-such-model"), device="cpu", config=CONFIG), plan, groups)
    try:
        with pytest.raises(LearnerFailure, match=r"it failed to start: .*no-such-model"):
            for _ in range(600):
                group.check()
                time.sleep(0.1)
    finally:
        group.shutdown()
        for placement in groups:
            ray_session.util.remove_placement_group(placement)


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


# One step of 7 samples (the two shards pack into different numbers of micro-batches), then one of a
# single sample (rank 1 gets none and runs only fillers); with KL, the sharded reference runs too.
UNEVEN_STEPS = (samples(7, seed=1), samples(1, seed=5))
# A smaller step than CONFIG's: Adam divides by the root of each squared gradient, so elements whose
# gradient is almost 0 turn float-order noise into update noise in proportion to the rate.
KL_CONFIG = {**CONFIG, "kl_coef": 0.05, "lr": 1e-3}


def assert_same_weights(actual, expected, **tolerance):
    assert actual.keys() == expected.keys()
    for name, value in actual.items():
        torch.testing.assert_close(value, expected[name], **tolerance)


@pytest.mark.slow
def test_fsdp_ranks_update_like_replicated_ranks_and_one_learner_with_uneven_and_empty_shards(group_of, tiny_lm_path):
    from agents.training.batching import micro_batch_passes

    shards = [UNEVEN_STEPS[0][r::2] for r in range(2)]
    assert len({len(pack_micro_batches(shard, CONFIG["micro_batch_tokens"])) for shard in shards}) == 2  # uneven
    assert micro_batch_passes([UNEVEN_STEPS[1][r::2] for r in range(2)], CONFIG["micro_batch_tokens"]) == 1
    single = one_learner(tiny_lm_path, KL_CONFIG)
    expected = [single.grpo_step(batch) for batch in UNEVEN_STEPS]
    reference = {k: p.detach() for k, p in single.model.named_parameters()}
    initial = one_learner(tiny_lm_path, KL_CONFIG).model.named_parameters()
    assert max(float((reference[k] - p.detach()).abs().max()) for k, p in initial) > 1e-4  # far above the tolerance
    results = {}
    for strategy in ("replicate", "fsdp"):
        group = group_of(2, strategy, KL_CONFIG)
        metrics = [group.update(batch) for batch in UNEVEN_STEPS]
        rank0, rank1 = group.parameters()
        group_of.release(group)
        assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), strategy  # the whole weights agree on every rank
        assert_same_weights(rank0, reference, rtol=1e-5, atol=1e-6)
        for got, want in zip(metrics, expected, strict=True):
            for key in ("loss", "kl", "clip_frac", "entropy", "grad_norm", "response_tokens"):
                assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), (strategy, key)
        results[strategy] = rank0
    assert_same_weights(results["fsdp"], results["replicate"], rtol=1e-5, atol=1e-6)
    assert expected[1]["grad_norm"] > 0  # the single-sample step moved the weights too


@pytest.mark.slow
def test_fsdp_ranks_skip_zero_advantage_samples_like_one_learner_even_when_a_step_has_no_signal(group_of, tiny_lm_path):
    flat = [Sample(s.prompt_ids, s.response_ids, s.logprobs, 0.0) for s in samples(4, seed=7)]
    steps = (samples(5, seed=2) + flat, flat)  # the second step forwards nothing on either rank
    single = one_learner(tiny_lm_path)
    expected = [single.grpo_step(batch) for batch in steps]
    group = group_of(2, "fsdp")
    metrics = [group.update(batch) for batch in steps]
    assert_same_weights(group.parameters()[0], {k: p.detach() for k, p in single.model.named_parameters()},
                        rtol=1e-5, atol=1e-6)
    for got, want in zip(metrics, expected, strict=True):
        for key in ("loss", "clip_frac", "grad_norm", "response_tokens", "forwarded_tokens", "skipped_samples",
                    "micro_batches"):
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), key
    assert metrics[1]["micro_batches"] == 0 and metrics[1]["skipped_samples"] == 4 and metrics[1]["grad_norm"] == 0


@pytest.mark.slow
def test_a_sharded_group_saves_whole_weights_and_resumes_exactly(group_of, tiny_lm_path, tmp_path, ray_session):
    from safetensors.torch import load_file

    first = group_of(2, "fsdp")
    first.update(UNEVEN_STEPS[0])
    saved = first.save(tmp_path, 1, {"step": 1, "version": 1})
    manifest = json.loads((tmp_path / "checkpoints" / "step-00000001" / "manifest.json").read_text())
    assert manifest["sharded"] is True
    state = ray_session.get(first.weights())
    written = load_file(f"{saved}/model.safetensors")
    whole = first.parameters()[0]
    assert state.keys() == written.keys() == whole.keys()  # full tensors, not shards, in the object store and files
    assert all(torch.equal(state[k], whole[k]) and torch.equal(written[k], whole[k]) for k in whole)
    first.update(UNEVEN_STEPS[1])
    uninterrupted = first.parameters()[0]
    first.export(tmp_path / "final")
    exported = load_file(tmp_path / "final" / "model.safetensors")
    assert all(torch.equal(exported[k], uninterrupted[k]) for k in uninterrupted)
    group_of.release(first)
    second = group_of(2, "fsdp")
    assert second.restore(tmp_path / "checkpoints" / "step-00000001") == 1
    second.update(UNEVEN_STEPS[1])
    resumed = second.parameters()[0]
    assert all(torch.equal(uninterrupted[k], resumed[k]) for k in uninterrupted)  # optimizer state came back too
