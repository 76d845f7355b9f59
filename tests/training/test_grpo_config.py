"""The GRPO settings that decide how the loss is computed: one precision for sampler and learner, when
the learner recomputes the old logprobs, dual clipping and dynamic sampling flags (no model, no GPU)."""

from __future__ import annotations

import contextlib
import json
import warnings

import pytest

from agents.training.cli import parse_dataclass
from agents.training.grpo_config import GRPOArgs
from agents.training.ray.config import RayArgs
from agents.training.ray.run import learner_spec, worker_config
from agents.training.runs import train
from tests.support.extras import needs
from tests.training.test_runs import Recording

NEEDS_TORCH = needs("torch", "train")  # the learner's settings and RayArgs' checks import it


def grpo(cls=GRPOArgs, **overrides):
    return cls(**{"out_dir": "unused", **overrides})


@pytest.mark.parametrize("engine, on_cuda, precision, recompute", [
    ("hf", False, "bfloat16", False),  # CPU computes in float32: the hf sampler's logprobs are the learner's
    ("hf", False, "float32", False),
    ("hf", True, "float32", False),
    ("hf", True, "bfloat16", True),  # cached decoding and a full forward round apart in bfloat16
    ("vllm", False, "float32", True),  # another engine's kernels
    ("vllm", True, "bfloat16", True),
])
def test_auto_recomputes_old_logprobs_unless_the_sampler_is_the_hf_engine_in_float32(engine, on_cuda, precision,
                                                                                      recompute):
    args = grpo(precision=precision)
    assert args.learner_settings(engine=engine, on_cuda=on_cuda)["recompute_old_logprobs"] is recompute
    for forced, value in (("on", True), ("off", False)):
        assert grpo(precision=precision, recompute_old_logprobs=forced).recomputes_old_logprobs(
            engine=engine, on_cuda=on_cuda) is value


@NEEDS_TORCH
def test_the_learner_settings_carry_every_loss_flag():
    from agents.training.learner_config import LearnerConfig

    args = grpo(dual_clip=2.5, clip_low=0.1, kl_coef=0.0, precision="float32", lr=3e-6)
    config = LearnerConfig(**args.learner_settings(engine="hf", on_cuda=False))  # valid as it stands
    assert (config.dual_clip, config.clip_low, config.kl_coef, config.bf16, config.lr) == (2.5, 0.1, 0.0, False, 3e-6)


@NEEDS_TORCH
@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
@pytest.mark.parametrize("engine", ["hf", "vllm"])
def test_engines_and_learners_of_a_ray_run_compute_in_one_precision(precision, engine):
    from agents.training.envs import EnvSpec

    args = grpo(RayArgs, precision=precision, engine=engine, num_gpus=8)
    engine_config = worker_config(args, EnvSpec.from_flags(args.env_id, args.env_kwargs, None)).engine
    learner = learner_spec(args)
    assert engine_config.precision == precision and learner.device == engine_config.device == "cuda"
    assert learner.config["bf16"] is (precision == "bfloat16")
    assert learner.config["recompute_old_logprobs"] is (engine == "vllm" or precision == "bfloat16")


@NEEDS_TORCH
def test_the_shared_precision_autocasts_to_bfloat16_on_cuda_only():
    import torch

    from agents.models import compute_precision

    assert isinstance(compute_precision("cpu", True), contextlib.nullcontext)  # CPU: float32, always
    assert isinstance(compute_precision("cuda", False), contextlib.nullcontext)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without a GPU torch warns that it disables the autocast it builds
        cast = compute_precision(torch.device("cuda", 1), True)
    assert isinstance(cast, torch.autocast) and cast.fast_dtype == torch.bfloat16


@pytest.mark.parametrize("flags, message", [
    (["--precision", "float16"], "--precision float16: choose bfloat16 or float32"),
    (["--dual-clip", "1"], "--dual-clip 1.0: the bound must be above 1"),
    (["--recompute-old-logprobs", "sometimes"], "choose auto, on or off"),
    (["--max-sample-rounds", "0"], "--max-sample-rounds 0: need at least 1"),
])
@pytest.mark.parametrize("cls", [GRPOArgs, pytest.param(RayArgs, marks=NEEDS_TORCH)])
def test_bad_loss_flags_say_what_to_fix(cls, flags, message):
    problems = parse_dataclass(cls, ["--out-dir", "unused", *flags]).problems()
    assert any(message in problem for problem in problems), problems


def test_the_new_flags_are_recorded_in_config_json(tmp_path):
    flags = ["--dual-clip", "2.5", "--recompute-old-logprobs", "on", "--precision", "float32", "--dynamic-sampling",
             "--max-sample-rounds", "2", "--steps", "1", "--logger", "none", "--out-dir", str(tmp_path)]
    train(parse_dataclass(GRPOArgs, flags), Recording)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert {k: saved[k] for k in ("dual_clip", "recompute_old_logprobs", "precision", "dynamic_sampling",
                                  "max_sample_rounds")} == {"dual_clip": 2.5, "recompute_old_logprobs": "on",
                                                            "precision": "float32", "dynamic_sampling": True,
                                                            "max_sample_rounds": 2}
    defaults = grpo()
    assert (defaults.dual_clip, defaults.recompute_old_logprobs, defaults.precision, defaults.dynamic_sampling) == (
        3.0, "auto", "bfloat16", False)  # the reference's loss; dynamic sampling is an option, off as there
