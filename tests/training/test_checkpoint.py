"""Checkpoints of the learner: round trip, exact resume, pruning, atomic saves and loud failures."""

import dataclasses
import json
import random
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from agents.training import checkpoint as checkpoint_module  # noqa: E402
from agents.training.checkpoint import (  # noqa: E402
    CheckpointError,
    export_model,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from agents.training.grpo import Sample  # noqa: E402
from agents.training.learner import Learner, LearnerConfig, LoraSettings  # noqa: E402
from atommem_env.errors import AtomMemError  # noqa: E402
from tests.support.tiny_lm import WORDS, build_tiny_lm  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

VOCAB = 48
CONFIG = LearnerConfig(lr=1e-2, warmup_steps=3, kl_coef=0.0)


def tiny_model(seed=0, hidden=32, dropout=0.0, tied=False):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        attention_dropout=dropout, tie_word_embeddings=tied,
    )
    return transformers.LlamaForCausalLM(config)


POOL = [Sample(tuple(range(1 + i, 6 + i)), tuple(range(10 + i, 13 + i))) for i in range(8)]


def train(learner, steps, generator):
    """SFT steps whose samples are picked with every RNG a run uses, so a resume must restore them all."""
    losses = []
    for _ in range(steps):
        picks = {
            int(torch.randint(len(POOL), (1,))),
            int(torch.randint(len(POOL), (1,), generator=generator)),
            random.randrange(len(POOL)),
            int(np.random.randint(len(POOL))),
        }
        losses.append(learner.sft_step([POOL[i] for i in sorted(picks)])["loss"])
    return losses


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def test_a_resumed_run_matches_an_uninterrupted_one_bit_for_bit(tmp_path):
    """Dropout and RNG-picked samples: resuming needs the weights, optimizer, schedule and every RNG."""
    seed_all(0)
    whole = Learner(tiny_model(dropout=0.2), CONFIG)
    sampler = torch.Generator().manual_seed(7)
    expected = train(whole, 6, sampler)

    seed_all(0)
    first = Learner(tiny_model(dropout=0.2), CONFIG)
    sampler = torch.Generator().manual_seed(7)
    assert train(first, 3, sampler) == expected[:3]
    path = save_checkpoint(tmp_path, first, 3, state={"epoch": 1}, generators={"sampler": sampler})

    seed_all(123)  # a new process: other weights, other RNG states
    resumed = Learner(tiny_model(seed=5, dropout=0.2), CONFIG)
    sampler = torch.Generator().manual_seed(99)
    step, state = load_checkpoint(path, resumed, generators={"sampler": sampler})
    assert (step, state, resumed.steps) == (3, {"epoch": 1}, 3)
    assert train(resumed, 3, sampler) == expected[3:]  # exact float equality
    assert_same_weights(weights(resumed.model), weights(whole.model))


def test_the_checkpoint_folder_loads_with_from_pretrained_and_holds_the_training_state(tmp_path):
    from agents.models import load_causal_lm

    folder = build_tiny_lm(tmp_path / "tiny")
    model, tokenizer = load_causal_lm(str(folder), device="cpu")
    learner = Learner(model, CONFIG)
    train(learner, 2, torch.Generator())
    path = save_checkpoint(tmp_path / "run", learner, 2, tokenizer=tokenizer)
    assert path == tmp_path / "run" / "checkpoints" / "step-00000002"
    assert {"model.safetensors", "config.json", "tokenizer.json", "training.pt", "rng.pt", "state.json",
            "manifest.json"} <= {p.name for p in path.iterdir()}
    reloaded, reloaded_tokenizer = load_causal_lm(str(path), device="cpu")
    assert_same_weights(weights(reloaded), weights(learner.model))
    assert reloaded_tokenizer("the answer").input_ids == tokenizer("the answer").input_ids
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["step"] == 2 and manifest["learner_config"]["lr"] == CONFIG.lr
    assert manifest["parameters"]["lm_head.weight"] == {"shape": [len(WORDS), 32], "dtype": "float32"}

    fresh = Learner(load_causal_lm(str(folder), device="cpu")[0], CONFIG)
    assert load_checkpoint(path, fresh) == (2, {})
    assert_same_weights(weights(fresh.model), weights(learner.model))
    assert fresh.scheduler.get_last_lr() == learner.scheduler.get_last_lr()
    saved, restored = learner.optimizer.state_dict()["state"], fresh.optimizer.state_dict()["state"]
    assert all(torch.equal(saved[i]["exp_avg_sq"], restored[i]["exp_avg_sq"]) for i in saved)


def test_tied_embeddings_are_saved_once_and_restored(tmp_path):
    learner = Learner(tiny_model(tied=True), CONFIG)
    train(learner, 2, torch.Generator())
    path = save_checkpoint(tmp_path, learner, 2)
    fresh = Learner(tiny_model(seed=3, tied=True), CONFIG)
    load_checkpoint(path, fresh)
    assert fresh.model.lm_head.weight.data_ptr() == fresh.model.model.embed_tokens.weight.data_ptr()
    assert_same_weights(weights(fresh.model), weights(learner.model))


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    learner = Learner(tiny_model(), CONFIG)
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, learner, step, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000003", "step-00000004"]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-00000004"
    assert latest_checkpoint(tmp_path / "elsewhere") is None


def test_a_crash_during_a_save_leaves_no_folder_that_is_picked(tmp_path, monkeypatch):
    learner = Learner(tiny_model(), CONFIG)
    good = save_checkpoint(tmp_path, learner, 1)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "_write_manifest", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, learner, 2)
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000001"]
    # A killed process runs no cleanup: it leaves its staging folder, complete or not.
    shutil.copytree(good, tmp_path / "checkpoints" / ".staging-step-00000005-x1y2")
    (tmp_path / "checkpoints" / "step-00000006").mkdir()  # a step folder without its manifest
    assert latest_checkpoint(tmp_path) == good
    save_checkpoint(tmp_path, learner, 3)
    assert not list((tmp_path / "checkpoints").glob(".staging-*"))  # leftovers go with the next save


def test_saving_the_same_step_again_replaces_it(tmp_path):
    learner = Learner(tiny_model(), CONFIG)
    save_checkpoint(tmp_path, learner, 1, state={"n": 1})
    path = save_checkpoint(tmp_path, learner, 1, state={"n": 2})
    assert json.loads((path / "state.json").read_text()) == {"n": 2}
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000001"]


@pytest.fixture
def saved(tmp_path):
    learner = Learner(tiny_model(), CONFIG)
    train(learner, 1, torch.Generator())
    return save_checkpoint(tmp_path, learner, 1)


def test_a_truncated_weight_file_is_reported_with_the_fix(saved):
    weights_file = saved / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])
    truncated = r"model.safetensors has 1000 bytes.*truncated.*delete this folder"
    with pytest.raises(CheckpointError, match=truncated) as error:
        load_checkpoint(saved, Learner(tiny_model(), CONFIG))
    assert str(saved) in str(error.value) and isinstance(error.value, AtomMemError)


@pytest.mark.parametrize("name", ["model.safetensors", "training.pt", "rng.pt"])
def test_a_corrupt_file_of_the_right_size_is_reported(saved, name):
    path = saved / name
    path.write_bytes(b"\x00" * path.stat().st_size)
    with pytest.raises(CheckpointError, match=f"{name} cannot be read"):
        load_checkpoint(saved, Learner(tiny_model(), CONFIG))


def test_a_missing_file_is_reported(saved):
    (saved / "rng.pt").unlink()
    with pytest.raises(CheckpointError, match="rng.pt is missing"):
        load_checkpoint(saved, Learner(tiny_model(), CONFIG))


def test_a_folder_that_is_not_a_checkpoint_is_reported(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint.*latest_checkpoint"):
        load_checkpoint(tmp_path, Learner(tiny_model(), CONFIG))


def test_another_architecture_is_refused_before_anything_changes(saved):
    other = Learner(tiny_model(hidden=16), CONFIG)
    before = weights(other.model)
    mismatch = (r"does not fit this model \(lm_head.weight: checkpoint float32\[48, 32\], "
                r"model float32\[48, 16\];.*and 16 more")
    with pytest.raises(CheckpointError, match=mismatch):
        load_checkpoint(saved, other)
    assert_same_weights(weights(other.model), before)


def test_another_learner_config_names_the_fields_that_differ(saved):
    other = LearnerConfig(lr=2e-2, warmup_steps=3, kl_coef=0.0, micro_batch_tokens=64)
    differences = r"lr: checkpoint 0.01, this learner 0.02; micro_batch_tokens: checkpoint 16384, this learner 64"
    with pytest.raises(CheckpointError, match=differences):
        load_checkpoint(saved, Learner(tiny_model(), other))
    allowed = LearnerConfig(lr=1e-2, warmup_steps=3, kl_coef=0.0, micro_batch_tokens=64)
    assert load_checkpoint(saved, Learner(tiny_model(), allowed), allow_config_changes=["micro_batch_tokens"])[0] == 1


def test_a_config_field_added_after_the_save_counts_at_its_default(saved):
    manifest = saved / "manifest.json"
    old = json.loads(manifest.read_text())
    del old["learner_config"]["dual_clip"]  # a checkpoint written before dual clipping existed
    manifest.write_text(json.dumps(old))
    assert load_checkpoint(saved, Learner(tiny_model(), CONFIG))[0] == 1  # the default: the same config
    with pytest.raises(CheckpointError, match="dual_clip: checkpoint 3.0, this learner 0.0"):
        load_checkpoint(saved, Learner(tiny_model(), dataclasses.replace(CONFIG, dual_clip=0.0)))


def test_generators_are_restored_and_a_missing_one_is_reported(tmp_path):
    learner = Learner(tiny_model(), CONFIG)
    sampler = torch.Generator().manual_seed(1)
    path = save_checkpoint(tmp_path, learner, 1, generators={"sampler": sampler})
    expected = torch.rand(3, generator=sampler)
    other = torch.Generator().manual_seed(2)
    load_checkpoint(path, learner, generators={"sampler": other})
    assert torch.equal(torch.rand(3, generator=other), expected)
    with pytest.raises(CheckpointError, match=r"no state for the generators \['shuffle'\]"):
        load_checkpoint(path, learner, generators={"shuffle": other})


def test_a_numpy_global_generator_other_than_mt19937_is_refused_with_a_clear_error():
    from agents.training.errors import RunError
    from agents.training.rng import capture_rng

    original = np.random.get_bit_generator()
    np.random.set_bit_generator(np.random.PCG64(0))
    try:  # its state is a dict, which used to fail as "too many values to unpack"
        with pytest.warns(RuntimeWarning), pytest.raises(RunError, match="is PCG64; .* only the legacy MT19937"):
            capture_rng()
    finally:
        np.random.set_bit_generator(original)


def test_lora_checkpoints_hold_the_adapters_and_export_merges_them(tmp_path):
    pytest.importorskip("peft", reason="peft is not installed (pip install 'atommem[train]')")
    from agents.models import load_causal_lm

    folder = build_tiny_lm(tmp_path / "tiny")
    config = LearnerConfig(lr=1e-2, warmup_steps=0, kl_coef=0.0, lora=LoraSettings(r=4))
    model, tokenizer = load_causal_lm(str(folder), device="cpu")
    learner = Learner(model, config)
    train(learner, 2, torch.Generator())
    path = save_checkpoint(tmp_path / "run", learner, 2)
    assert {"adapter_model.safetensors", "adapter_config.json"} <= {p.name for p in path.iterdir()}
    assert not (path / "model.safetensors").exists()

    fresh = Learner(load_causal_lm(str(folder), device="cpu")[0], config)
    load_checkpoint(path, fresh)
    assert_same_weights(weights(fresh.model), weights(learner.model))

    exported = export_model(learner, tmp_path / "final", tokenizer=tokenizer)
    merged, _ = load_causal_lm(str(exported), device="cpu")
    ids = torch.tensor([[3, 4, 5, 6]])
    learner.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, learner.model(input_ids=ids).logits,
                                   atol=1e-5, rtol=1e-5)
    assert any("lora_" in name for name, _ in learner.model.named_parameters())  # the learner keeps its adapters
