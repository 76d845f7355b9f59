"""experiments/grpo_train.py: the GRPO loop end to end on a tiny model, exact resume, the episode plan
and argument checks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training needs torch (pip install -e '.[train]')")
pytest.importorskip("transformers", reason="training needs transformers (pip install -e '.[train]')")

from agents.training.cli import parse_dataclass  # noqa: E402
from agents.training.errors import RunError  # noqa: E402
from agents.training.grpo_config import PRESETS, GRPOArgs  # noqa: E402
from agents.training.grpo_run import GRPORun  # noqa: E402
from agents.training.runs import EpisodePlan, check_run_dir  # noqa: E402
from atommem_env.errors import ConfigError  # noqa: E402
from experiments import grpo_train  # noqa: E402
from tests.support.tiny_lm import build_tiny_lm  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return str(build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"), max_positions=1024))


def argv(tiny_path, out_dir, *extra):
    return [
        "--model", tiny_path, "--env-kwargs", json.dumps({"num_documents": 4, "chunk_tokens": 128}),
        "--prompts-per-step", "2", "--group-size", "2", "--rollout-batch-size", "4", "--max-new-tokens", "4",
        "--lr", "1e-2", "--warmup-steps", "0", "--kl-coef", "0", "--eval-every", "1", "--eval-episodes", "2",
        "--save-every", "1", "--logger", "none", "--device", "cpu", "--out-dir", str(out_dir), *extra,
    ]


FIXTURES = str(Path(__file__).resolve().parents[1] / "fixtures" / "data")
# The HotpotQA fixture: 3 usable dev records, 10 paragraphs, so small single-question episodes.
SMALL_REAL = {"num_documents": 10, "questions_per_episode": "single", "chunk_tokens": 128, "prompt_style": "compact"}


def read_metrics(out_dir):
    with open(out_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_short_run_trains_evaluates_checkpoints_and_saves_a_loadable_model(tiny_path, tmp_path):
    from agents.hf_policy import TransformersPolicy

    before = TransformersPolicy(tiny_path, device="cpu").model.state_dict()
    metrics = grpo_train.main(argv(tiny_path, tmp_path, "--steps", "2"))
    for key in ("train/loss", "train/grad_norm", "train/dual_clip_frac", "train/sampler_abs_log_ratio",
                "train/skipped_samples", "rollout/reward", "rollout/create_per_turn", "rollout/read_per_turn",
                "rollout/update_per_turn", "rollout/delete_per_turn", "rollout/flat_groups", "rollout/groups_sampled",
                "rollout/sample_rounds", "rollout/trained_groups", "eval/em", "time/rollout_s"):
        assert key in metrics
    rows = read_metrics(tmp_path)
    assert [row["step"] for row in rows] == ["1", "2"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000001", "step-00000002"]
    after = TransformersPolicy(str(tmp_path / "final"), device="cpu").model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the update reached the saved weights


def test_dynamic_sampling_runs_end_to_end_and_logs_its_rounds(tiny_path, tmp_path):
    flags = ("--steps", "1", "--dynamic-sampling", "--max-sample-rounds", "2")
    metrics = grpo_train.main(argv(tiny_path, tmp_path, *flags))
    rounds, trained = metrics["rollout/sample_rounds"], metrics["rollout/trained_groups"]
    assert rounds in (1, 2) and metrics["rollout/groups_sampled"] == 2 * rounds  # 2 groups a round
    assert trained == 2 if rounds == 1 else trained <= 2  # a second round only when the first had too few mixed
    assert metrics["rollout/episodes"] == 4 * rounds


def test_the_sampler_shares_the_learners_weights(tiny_path, tmp_path):
    args = parse_dataclass(GRPOArgs, argv(tiny_path, tmp_path, "--steps", "1"))
    run = GRPORun(args)
    assert run.sampler.model is run.learner.model is run.greedy.model
    weight = next(run.learner.model.parameters())
    snapshot = weight.detach().clone()
    run.step(0)
    assert not torch.equal(snapshot, weight.detach())


@pytest.mark.parametrize("precision, bf16", [("bfloat16", True), ("float32", False)])
def test_sampler_and_learner_compute_in_one_precision(tiny_path, tmp_path, precision, bf16):
    from agents.training.ray.config import RayArgs
    from agents.training.ray.engines import make_engine
    from agents.training.ray.run import worker_config

    flags = argv(tiny_path, tmp_path, "--precision", precision)
    run = GRPORun(parse_dataclass(GRPOArgs, flags))
    assert run.sampler.bf16 is run.greedy.bf16 is run.learner.config.bf16 is bf16  # autocast on CUDA, as one
    assert run.learner.config.recompute_old_logprobs is False  # on the CPU the hf sampler's logprobs are float32's
    ray_args = parse_dataclass(RayArgs, [flag for flag in flags if flag not in ("--device", "cpu")])
    engine = make_engine(worker_config(ray_args, run.env).engine)  # the hf engine of a rollout worker
    assert engine.sampler.bf16 is engine.greedy.bf16 is bf16


def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_path, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    grpo_train.main(argv(tiny_path, straight, "--steps", "3"))
    grpo_train.main(argv(tiny_path, resumed, "--steps", "1"))
    grpo_train.main(argv(tiny_path, resumed, "--steps", "3", "--resume"))
    a = read_metrics(straight)
    b = read_metrics(resumed)
    assert [r["step"] for r in b] == ["1", "2", "3"]
    for key in ("train/loss", "rollout/reward", "rollout/response_tokens"):
        assert [r[key] for r in a] == [r[key] for r in b]
    from safetensors.torch import load_file

    final_a = load_file(straight / "final" / "model.safetensors")
    final_b = load_file(resumed / "final" / "model.safetensors")
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


def test_a_used_folder_is_refused_without_resume(tiny_path, tmp_path):
    grpo_train.main(argv(tiny_path, tmp_path, "--steps", "1"))
    with pytest.raises(SystemExit, match="already holds a run"):
        grpo_train.main(argv(tiny_path, tmp_path, "--steps", "1"))


def test_resume_refuses_changed_settings_and_missing_runs(tiny_path, tmp_path):
    with pytest.raises(SystemExit, match="holds no run"):
        grpo_train.main(argv(tiny_path, tmp_path / "empty", "--steps", "1", "--resume"))
    grpo_train.main(argv(tiny_path, tmp_path, "--steps", "1"))
    with pytest.raises(SystemExit, match=r"group_size: 2 -> 3"):
        grpo_train.main(argv(tiny_path, tmp_path, "--steps", "2", "--resume", "--group-size", "3"))


def test_a_run_saved_before_a_setting_existed_resumes_at_that_settings_default(tmp_path):
    from agents.training.ray.config import RayArgs

    args = RayArgs(out_dir=str(tmp_path), resume=True)
    saved = {k: v for k, v in vars(args).items() if k not in ("learner_strategy", "weight_sync")}
    (tmp_path / "config.json").write_text(json.dumps(saved))  # a config written before those flags
    (tmp_path / "checkpoints" / "step-00000001").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-00000001" / "manifest.json").write_text("{}")  # and its checkpoint
    check_run_dir(args, tmp_path)  # they are at their defaults: the same run
    args.learner_strategy = "fsdp"
    with pytest.raises(RunError, match=r"learner_strategy: 'replicate' -> 'fsdp'"):
        check_run_dir(args, tmp_path)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--group-size", "1"], "at least 2 rollouts"),
        (["--temperature", "0"], "positive temperature"),
        (["--logger", "csv"], "tensorboard, wandb or none"),
        (["--env-kwargs", "[1]"], "JSON object"),
    ],
)
def test_bad_arguments_say_what_to_fix(tiny_path, tmp_path, extra, message):
    with pytest.raises(SystemExit, match=message):
        grpo_train.main(argv(tiny_path, tmp_path, *extra))


def test_presets_fill_only_flags_not_given(tmp_path):
    args = parse_dataclass(
        GRPOArgs, ["--preset", "cpu-small", "--steps", "7", "--out-dir", str(tmp_path)],
        presets=PRESETS,
    )
    assert args.steps == 7 and args.group_size == 4 and args.model == "smollm2" and args.kl_coef == 0.0


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_makes_valid_arguments(tmp_path, preset):
    parse_dataclass(GRPOArgs, ["--preset", preset, "--out-dir", str(tmp_path)], presets=PRESETS).validate()


def test_the_small_model_preset_is_the_papers_group_shape_at_a_tenth_of_its_sft_rate(tmp_path):
    from agents.training.sft_config import PRESETS as SFT_PRESETS

    args = parse_dataclass(GRPOArgs, ["--preset", "cpu-small-model", "--model", "m", "--out-dir", str(tmp_path)],
                           presets=PRESETS)
    assert (args.prompts_per_step, args.group_size, args.model) == (8, 8, "m")
    assert args.lr == pytest.approx(SFT_PRESETS["cpu-small-model"]["lr"] / 10)
    assert args.env_id == "AtomMem-Synthetic-Tiny-v0" and args.save_every == 1


def test_the_plan_never_trains_on_held_out_episodes_and_is_deterministic():
    plan = EpisodePlan(size=10, held_out_count=3, per_step=4, seed=1)
    trained = {i for step in range(20) for i in plan.groups(step)[0]}
    assert trained == set(range(7)) and plan.held_out() == [7, 8, 9]
    assert plan.groups(5) == EpisodePlan(10, 3, 4, 1).groups(5)
    assert len(set(plan.groups(0)[1] + plan.groups(1)[1])) == 8  # every group starts from its own seed


def test_a_plan_that_holds_everything_out_is_refused():
    with pytest.raises(ConfigError, match="lower --eval-episodes"):
        EpisodePlan(size=4, held_out_count=4, per_step=1, seed=0)


@pytest.mark.parametrize("env_id, env_kwargs", [("AtomMem-Synthetic-Tiny-v0", {}), ("AtomMem-HotpotQA-v0", SMALL_REAL)])
def test_data_dir_reaches_the_ids_that_read_data_and_no_other(tiny_path, tmp_path, monkeypatch, env_id, env_kwargs):
    monkeypatch.delenv("ATOMMEM_DATA_DIR", raising=False)
    metrics = grpo_train.main(argv(
        tiny_path, tmp_path, "--steps", "1", "--env-id", env_id, "--env-kwargs", json.dumps(env_kwargs),
        "--data-dir", FIXTURES, "--prompts-per-step", "1", "--eval-episodes", "1",
        "--allow-dev-training",  # the fixture's train file is too small for 10-document episodes
    ))
    assert metrics["rollout/episodes"] == 2 and metrics["eval/episodes"] == 1
