"""Which data a GRPO run trains on: --preset paper trains on the train split, a real id's dev split is
refused unless --allow-dev-training, and every run records its split in config.json (no model, no Ray)."""

from __future__ import annotations

import json

import pytest

from agents.training.cli import parse_dataclass
from agents.training.envs import training_data
from agents.training.grpo_config import PRESETS, GRPOArgs
from agents.training.runs import check_run_dir, train
from atommem_env.errors import ConfigError
from tests.support.extras import needs
from tests.training.test_runs import Recording

HOTPOT = "AtomMem-HotpotQA-200-v0"


def grpo(**overrides) -> GRPOArgs:
    return GRPOArgs(**{"out_dir": "unused", **overrides})


@pytest.mark.parametrize("cls_path", ["agents.training.grpo_config:GRPOArgs", pytest.param(
    "agents.training.ray.config:RayArgs", marks=needs("torch", "ray"))])  # RayArgs' checks import torch
def test_paper_preset_trains_on_the_train_split_of_both_scripts(cls_path):
    import importlib

    module, _, name = cls_path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    args = parse_dataclass(cls, ["--preset", "paper", "--out-dir", "unused"], presets=PRESETS)
    assert args.env_id == HOTPOT and json.loads(args.env_kwargs) == {"split": "train"}
    args.validate()  # accepted: nothing is read here
    assert training_data(args.env_id, json.loads(args.env_kwargs)) == {"split": "train"}


@pytest.mark.parametrize("env_kwargs", ["{}", '{"split": "dev"}', '{"split": "validation", "top_k": 3}'])
def test_a_real_id_on_its_dev_split_is_refused_unless_asked_for(env_kwargs):
    with pytest.raises(ConfigError, match=r"dev split.*--env-kwargs '\{\"split\": \"train\"\}'.*--allow-dev-training"):
        grpo(env_id=HOTPOT, env_kwargs=env_kwargs).validate()
    grpo(env_id=HOTPOT, env_kwargs=env_kwargs, allow_dev_training=True).validate()


@needs("torch", "ray")
def test_the_refusal_reaches_ray_train_and_a_flag_given_after_the_preset_replaces_its_split():
    from agents.training.ray.config import RayArgs

    args = parse_dataclass(RayArgs, ["--preset", "paper", "--env-kwargs", '{"top_k": 3}', "--out-dir", "x"],
                           presets=PRESETS)
    with pytest.raises(ConfigError, match="--allow-dev-training"):
        args.validate()


def test_an_unknown_split_is_a_problem_and_synthetic_ids_have_none():
    assert any("Unknown split 'test'" in p for p in grpo(env_id=HOTPOT, env_kwargs='{"split": "test"}').problems())
    grpo().validate()  # AtomMem-Synthetic-v0: no split to refuse
    assert training_data("AtomMem-Synthetic-v0", {}) == {"split": None, "seed_salt": 0}
    assert training_data("AtomMem-Synthetic-Tiny-v0", {"seed_salt": 3}) == {"split": None, "seed_salt": 3}
    assert training_data("AtomMem-MemAgent-MuSiQue-800-v0", {"split": "train"}) == {"split": "train"}
    assert training_data("CartPole-v1", {}) == {"split": None}


@pytest.mark.parametrize("env_id, env_kwargs, allow, recorded", [
    ("AtomMem-Synthetic-v0", "{}", False, {"split": None, "seed_salt": 0}),
    (HOTPOT, '{"split": "train"}', False, {"split": "train"}),
    (HOTPOT, "{}", True, {"split": "dev"}),
])
def test_every_run_records_its_split_in_config_json(tmp_path, env_id, env_kwargs, allow, recorded):
    args = GRPOArgs(env_id=env_id, env_kwargs=env_kwargs, allow_dev_training=allow, steps=1, logger="none",
                    out_dir=str(tmp_path))
    train(args, Recording)
    config = json.loads((tmp_path / "config.json").read_text())
    assert {k: config[k] for k in recorded} == recorded and config["allow_dev_training"] is allow
    args.resume = True
    check_run_dir(args, tmp_path)  # the recorded split is not a flag: resuming compares flags only


def test_an_older_run_without_the_new_setting_resumes_and_may_add_the_permission(tmp_path):
    args = GRPOArgs(env_id=HOTPOT, out_dir=str(tmp_path), resume=True)
    saved = {k: v for k, v in vars(args).items() if k != "allow_dev_training"}  # a config from before the flag
    (tmp_path / "config.json").write_text(json.dumps(saved))
    (tmp_path / "checkpoints" / "step-00000001").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-00000001" / "manifest.json").write_text("{}")  # and its checkpoint
    check_run_dir(args, tmp_path)
    args.allow_dev_training = True  # a run begun on dev resumes by adding the permission it now needs
    check_run_dir(args, tmp_path)
