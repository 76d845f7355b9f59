"""The parts of the FSDP learner strategy that need no process group: option checks, the plan of
forward/backward passes and its zero-weight fillers, and the checkpoint guard between strategies.
Sharded ranks themselves run in tests/test_learner_group.py (two gloo ranks on Ray)."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.training.batching import micro_batch_passes, pack_micro_batches, pad_micro_batches  # noqa: E402
from agents.training.fsdp import decoder_layers, strategy_problems  # noqa: E402
from agents.training.grpo import Sample  # noqa: E402
from agents.training.learner import Learner, LearnerConfig  # noqa: E402
from atommem_env.errors import ConfigError  # noqa: E402
from tests.training.test_learner import CPU_FAST, grads, random_samples, tiny_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def test_the_busiest_shard_sets_the_passes_and_fillers_make_up_the_rest():
    long, short = Sample((1,) * 7, (2,)), Sample((1,), (2,))
    shards = [[long, long, long], [short], []]
    assert micro_batch_passes(shards, token_budget=8) == 3  # three 8-token rows do not share a micro-batch
    assert micro_batch_passes([[], []], token_budget=8) == 0
    planned = pad_micro_batches(pack_micro_batches(shards[1], 8), 3, pad_token_id=5)
    assert [weight for _, weight in planned] == [1.0, 0.0, 0.0]
    assert planned[0][0] == [short]
    filler = planned[1][0]
    assert filler == [Sample((5,), (5,), (0.0,), 0.0)]  # one pad-token row: the cheapest pass there is
    assert [weight for _, weight in pad_micro_batches([], 2, pad_token_id=0)] == [0.0, 0.0]  # a rank without samples


def test_fewer_passes_than_micro_batches_is_an_error():
    with pytest.raises(ValueError, match="cannot run in 1 passes"):
        pad_micro_batches([[Sample((1,), (2,))]] * 2, 1, pad_token_id=0)


@pytest.mark.parametrize("objective", ["grpo", "sft"])
def test_filler_passes_change_neither_the_gradient_nor_the_metrics(objective):
    samples = random_samples(count=5)
    plain = Learner(tiny_model(), LearnerConfig(**CPU_FAST, micro_batch_tokens=12))
    padded = Learner(tiny_model(), LearnerConfig(**CPU_FAST, micro_batch_tokens=12))
    expected = plain.compute_gradients(samples, objective, step_tokens=40)
    actual = padded.compute_gradients(samples, objective, step_tokens=40, passes=int(expected["micro_batches"]) + 2)
    assert actual == expected  # fillers count for nothing: not in the sums, not in micro_batches
    want, got = grads(plain.model), grads(padded.model)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_a_rank_without_samples_still_runs_its_passes_with_zero_gradients():
    learner = Learner(tiny_model(), LearnerConfig(**CPU_FAST))
    calls = []
    forward = learner.model.forward
    learner.model.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    metrics = learner.compute_gradients([], "grpo", step_tokens=12, passes=2)
    assert len(calls) == 2 and metrics["micro_batches"] == 0 and metrics["loss"] == 0.0
    assert all(not g.any() for g in grads(learner.model).values()) and grads(learner.model)
    nothing = learner.compute_gradients([], "grpo")  # no plan of passes: a step that forwards nothing runs none
    assert len(calls) == 2 and nothing["loss"] == 0.0 and nothing["micro_batches"] == 0
    assert math.isnan(nothing["entropy"])  # measured over no token: not a number, not a made-up 0
    with pytest.raises(ValueError, match="at least one sample"):
        learner.compute_gradients([], "sft")  # a supervised step without data is a mistake


@pytest.mark.parametrize("strategy, ranks, lora_r, message", [
    ("zero3", 2, 0, "choose replicate"),
    ("fsdp", 1, 0, "use --num-learners 2"),
    ("fsdp", 4, 8, "LoRA is not supported on sharded models"),
])
def test_bad_strategies_say_what_to_do(strategy, ranks, lora_r, message):
    assert any(message in line for line in strategy_problems(strategy, ranks, lora_r))


def test_good_strategies_pass():
    assert strategy_problems("replicate", 1, 8) == [] and strategy_problems("fsdp", 2, 0) == []


def test_fsdp_shards_the_decoder_layers_and_refuses_models_without_them():
    model = tiny_model()
    assert decoder_layers(model) == list(model.model.layers)
    with pytest.raises(ConfigError, match="no decoder layer class"):
        decoder_layers(torch.nn.Linear(2, 2))


def test_a_checkpoint_of_one_strategy_is_refused_by_the_other(tmp_path):
    from agents.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    learner = Learner(tiny_model(), LearnerConfig(**CPU_FAST))
    folder = save_checkpoint(tmp_path, learner, 1)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["sharded"] is False
    manifest["sharded"] = True  # as an FSDP run writes it
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="saved by a fsdp learner.*--learner-strategy"):
        load_checkpoint(folder, learner)
