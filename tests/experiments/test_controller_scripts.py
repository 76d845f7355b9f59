"""The controller scripts' Ray-free parts: arguments, the comparison table, the learning curve."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from agents.controller import training as T
from agents.controller.curve import curve_from_run, run_label, write_curve
from agents.controller.macros import MACROS
from agents.controller.training import ControllerArgs, rows_last, train_metrics
from agents.training.errors import RunError
from agents.training.tracking import Tracker
from atommem_env.errors import ConfigError
from experiments import controller_compare as C
from experiments import rllib_controller as R


@pytest.mark.parametrize("flags, message", [
    ({}, "--out-dir is required"),
    ({"out_dir": "x", "iterations": 0}, "--iterations must be at least 1"),
    ({"out_dir": "x", "minibatch_size": 4000}, "exceeds --batch-size"),
    ({"out_dir": "x", "gamma": 1.5}, "0 < --gamma <= 1"),
    ({"out_dir": "x", "logger": "csv"}, "choose one of"),
    ({"out_dir": "x", "env_kwargs": "[1]"}, "must be a JSON object"),
    ({"out_dir": "x", "env_id": "AtomMem-Nowhere-v0"}, "not an AtomMem id"),
    ({"out_dir": "x", "env_id": "AtomMem-HotpotQA-200-v0"}, "Train on the train split"),
    ({"out_dir": "x", "env_id": "AtomMem-HotpotQA-v0", "env_kwargs": '{"split": "validation"}'}, "training questions"),
])
def test_bad_arguments_stop_with_the_flag_named(flags, message):
    with pytest.raises(ConfigError, match=message):
        ControllerArgs(**flags).validate()


def test_real_benchmarks_train_on_the_train_split():
    ControllerArgs(out_dir="x", env_id="AtomMem-HotpotQA-200-v0", env_kwargs='{"split": "train"}').validate()
    ControllerArgs(out_dir="x", env_id="AtomMem-Synthetic-v0").validate()


def test_held_out_episodes_do_not_depend_on_the_training_seed(monkeypatch):
    calls = []

    def fake_play(config, policy, episodes, seed=0, first_index=0):
        calls.append((config["env_kwargs"].get("seed_salt"), episodes, seed))
        return []

    monkeypatch.setattr(T, "play_config", fake_play)
    monkeypatch.setattr(T, "summarize", lambda trajectories: {"em": 0.0})
    for seed in (0, 7):
        T.baselines(ControllerArgs(out_dir="x", seed=seed, eval_episodes=3))
    assert calls[:6] == calls[6:] and set(calls) == {(1, 3, 0)}  # 5 workflows and random, twice
    calls.clear()
    T.baselines(ControllerArgs(out_dir="x", seed=7, eval_seed=2, eval_episodes=3))
    assert set(calls) == {(1, 3, 2)}


def test_training_starts_ray_through_connect(monkeypatch, tmp_path):
    """Like ray_train.py: a slow raylet is retried and env runners import this checkout."""
    import agents.training.ray.cluster as W

    class Started(Exception):
        pass

    def fake_connect(address, *, num_cpus=None, log_to_driver=True):
        raise Started(address, num_cpus)

    monkeypatch.setattr(W, "connect", fake_connect)
    with pytest.raises(Started) as started:
        R.main(["--out-dir", str(tmp_path), "--num-env-runners", "1", "--logger", "none"])
    assert started.value.args == (None, 2)


def test_env_config_adds_the_data_dir():
    args = ControllerArgs(out_dir="x", env_id="AtomMem-HotpotQA-200-v0", env_kwargs='{"top_k": 3}', data_dir="d")
    assert args.env_config() == {"env_id": "AtomMem-HotpotQA-200-v0", "env_kwargs": {"top_k": 3, "data_dir": "d"}}


def test_train_metrics_reads_rllib_result_keys():
    result = {
        "env_runners": {"episode_return_mean": 0.25, "episode_len_mean": 7.0, "num_episodes": 12},
        "learners": {"default_policy": {"policy_loss": -0.1, "entropy": 1.5, "vf_loss": 0.2}},
        "num_env_steps_sampled_lifetime": 4000, "time_this_iter_s": 3.5,
    }
    metrics = train_metrics(result)
    assert metrics["train/episode_return_mean"] == 0.25 and metrics["train/env_steps"] == 4000
    assert metrics["train/entropy"] == 1.5 and "train/mean_kl_loss" not in metrics
    no_episode = train_metrics({**result, "env_runners": {}})
    assert math.isnan(no_episode["train/episode_return_mean"]) and no_episode["train/episodes"] == 0


def test_curve_files(tmp_path):
    rows = [{"iteration": 1, "train/env_steps": 100, "train/episode_return_mean": 0.1},
            {"iteration": 2, "train/env_steps": 200, "train/episode_return_mean": 0.3, "eval/em": 0.4}]
    paths = write_curve(rows, {"store-then-answer": 0.35, "random": 0.05}, tmp_path)
    plotted = importlib.util.find_spec("matplotlib") is not None  # without it the PNG is skipped, with a warning
    assert [p.name for p in paths] == ["curve.csv", "curve.png"][:1 + plotted] and paths[-1].stat().st_size > 0
    lines = paths[0].read_text().splitlines()
    assert lines[:2] == ["# held-out EM of random: 0.0500", "# held-out EM of store-then-answer: 0.3500"]
    table = list(csv.DictReader(lines[2:]))
    assert table == [{"iteration": "1", "env_steps": "100", "train_return": "0.1", "eval_em": ""},
                     {"iteration": "2", "env_steps": "200", "train_return": "0.3", "eval_em": "0.4"}]
    assert rows_last(rows, "eval/em") == 0.4 and math.isnan(rows_last(rows[:1], "eval/em"))


def test_curve_rebuilt_from_a_run_folder(tmp_path):
    with Tracker(tmp_path, backend="none") as tracker:
        tracker.log({"train/env_steps": 100, "train/episode_return_mean": 0.1}, step=1)
        tracker.log({"train/env_steps": 200, "train/episode_return_mean": 0.3, "eval/em": 0.4}, step=2)
    with pytest.raises(FileNotFoundError, match="baselines.json"):
        curve_from_run(tmp_path)
    (tmp_path / "baselines.json").write_text(json.dumps({"random": 0.05}))
    curve_from_run(tmp_path)
    table = list(csv.DictReader((tmp_path / "curve.csv").read_text().splitlines()[1:]))
    assert [(r["iteration"], r["env_steps"], r["eval_em"]) for r in table] == [("1", "100", ""), ("2", "200", "0.4")]
    args = ControllerArgs(out_dir="x", env_id="AtomMem-HotpotQA-v0", env_kwargs='{"split": "train"}', seed=3)
    (tmp_path / "config.json").write_text(json.dumps(asdict(args)))
    curve_from_run(tmp_path)
    lines = (tmp_path / "curve.csv").read_text().splitlines()
    assert lines[:2] == ['# run: AtomMem-HotpotQA-v0 {"split": "train"}, seed 3', "# held-out EM of random: 0.0500"]


def test_run_label_names_the_env_its_options_and_the_seed():
    assert run_label(asdict(ControllerArgs(out_dir="x"))) == "AtomMem-Synthetic-v0, seed 0"
    args = ControllerArgs(out_dir="x", env_kwargs='{"num_documents": 100, "chunk_tokens": 2000}', seed=1)
    assert run_label(asdict(args)) == 'AtomMem-Synthetic-v0 {"num_documents": 100, "chunk_tokens": 2000}, seed 1'


def test_compare_table_without_a_checkpoint(tmp_path):
    rows = C.main(["--episodes", "3", "--out-dir", str(tmp_path)])
    assert [r["policy"] for r in rows] == ["always-store", "store-then-answer", "memagent-overwrite", "never-read",
                                           "bridge-then-store", "random"]
    assert all(r["episodes"] == 3 and sum(r[f"macro/{m}"] for m in MACROS) == pytest.approx(1.0) for r in rows)
    written = list(csv.DictReader(open(tmp_path / "results.csv", encoding="utf-8")))
    assert [r["policy"] for r in written] == [r["policy"] for r in rows]
    assert (tmp_path / "results.md").read_text().startswith("| env_id | policy |")
    with pytest.raises(SystemExit, match="--episodes"):
        C.main(["--episodes", "0"])
    with pytest.raises(FileNotFoundError, match="No RLlib module checkpoint"):
        C.main(["--episodes", "1", "--checkpoint", str(tmp_path)])
    with pytest.raises(SystemExit, match="needs --checkpoint"):
        C.main(["--policies", "learned"])
    with pytest.raises(SystemExit, match="unknown"):
        C.main(["--policies", "always_store"])
    only = C.main(["--episodes", "2", "--policies", "never-read", "random"])
    assert [r["policy"] for r in only] == ["never-read", "random"]


def test_compare_with_learned_controllers_ships_episodes_and_paired_tests(tmp_path, monkeypatch):
    """One learned policy per checkpoint (here stand-ins), paired with every other policy, per seed and pooled."""
    import agents.controller.compare as M
    from agents.controller.workflows import WORKFLOWS

    stand_ins = {"run-a": WORKFLOWS["store-then-answer"], "run-b": WORKFLOWS["never-read"]}
    monkeypatch.setattr(M, "module_policy", lambda checkpoint: stand_ins[checkpoint.split("/")[-2]])
    out = tmp_path / "out"
    flags = ["--episodes", "6", "--policies", "always-store", "random", "learned", "--resamples", "200",
             "--checkpoint", f"{tmp_path}/run-a/final", f"{tmp_path}/run-b/final"]
    rows = C.main([*flags, "--out-dir", str(out)])
    assert [r["policy"] for r in rows] == ["always-store", "random", "learned:run-a", "learned:run-b"]
    assert all(r["em_lo"] <= r["em"] <= r["em_hi"] for r in rows)
    episodes = list(csv.DictReader(open(out / "episodes.csv", encoding="utf-8")))
    assert len(episodes) == 4 * 6 and {e["policy"] for e in episodes} == {r["policy"] for r in rows}
    assert [e["index"] for e in episodes[:6]] == [str(i) for i in range(6)]
    assert episodes[12]["macros"].split()[-3:] == ["read_question", "read_bridge", "answer"]  # run-a's first
    paired = list(csv.DictReader(open(out / "paired.csv", encoding="utf-8")))
    assert [(p["policy_a"], p["policy_b"]) for p in paired] == [
        (base, name) for name in ("learned:run-a", "learned:run-b") for base in ("always-store", "random")]
    pooled = list(csv.DictReader(open(out / "pooled.csv", encoding="utf-8")))
    assert [(p["baseline"], p["seeds"]) for p in pooled] == [("always-store", "2"), ("random", "2")]
    assert "learned:run-a | reading: " in (out / "behaviour.md").read_text()
    # played in two parts (the static policies once, the learned ones later), then tested together
    parts = []
    for part, policies in (("static", ["always-store", "random"]), ("learned", ["learned"])):
        C.main([*flags[:2], "--policies", *policies, *flags[6:], "--out-dir", str(tmp_path / part)])
        parts.append(str(tmp_path / part / "episodes.csv"))
    again = tmp_path / "again"
    merged = C.main(["--from-episodes", *parts, "--resamples", "200", "--out-dir", str(again)])
    for name in ("paired.csv", "pooled.csv", "episodes.csv"):
        assert (again / name).read_text() == (out / name).read_text()
    assert [r["policy"] for r in merged] == [r["policy"] for r in rows]
    for key in ("em", "em_lo", "em_hi", "f1", "turns", "macro/store_matches", "macro/answer"):
        assert [r[key] for r in merged] == pytest.approx([r[key] for r in rows])
    with pytest.raises(SystemExit, match="twice"):
        C.main(["--from-episodes", parts[0], parts[0]])
    with pytest.raises(SystemExit, match="share a run folder"):
        C.main(["--episodes", "1", "--checkpoint", f"{tmp_path}/x/run-a", f"{tmp_path}/y/run-a"])


class FakeAlgo:
    """Stands in for an RLlib Algorithm: counts iterations, records the checkpoint it was restored from."""

    def __init__(self) -> None:
        self.iterations, self.restored = 0, None

    def train(self) -> dict:
        self.iterations += 1
        return {"env_runners": {"episode_return_mean": 0.1 * self.iterations}, "learners": {"default_policy": {}},
                "num_env_steps_sampled_lifetime": 100 * self.iterations, "time_this_iter_s": 0.1}

    def get_module(self) -> None:
        return None

    def save_to_path(self, path: str) -> None:
        (Path(path) / "saved").mkdir(parents=True, exist_ok=True)

    def restore_from_path(self, path: str) -> None:
        self.restored = path

    def stop(self) -> None:
        pass


def test_a_stopped_run_resumes_from_its_newest_checkpoint(tmp_path, monkeypatch):
    algos: list[FakeAlgo] = []

    def build() -> FakeAlgo:
        algos.append(FakeAlgo())
        return algos[-1]

    monkeypatch.setattr(T, "ppo_config", lambda args: SimpleNamespace(build_algo=build))
    monkeypatch.setattr(T, "register_env", lambda: None)
    monkeypatch.setattr(T, "baselines", lambda args: {"random": 0.05})
    monkeypatch.setattr(T, "evaluate", lambda args, module: {"eval/em": 0.3})
    common = {"out_dir": str(tmp_path), "checkpoint_every": 2, "eval_every": 2, "logger": "none"}
    with pytest.raises(RunError, match="no checkpoints"):
        T.train(ControllerArgs(**common, iterations=5, resume=True))
    T.train(ControllerArgs(**common, iterations=3))  # "stopped" after iteration 3: newest checkpoint iter-0002
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["iter-0002"]
    result = T.train(ControllerArgs(**common, iterations=5, resume=True))
    assert algos[-1].restored == str((tmp_path / "checkpoints" / "iter-0002").resolve())
    assert algos[-1].iterations == 3 and result["last"]["iteration"] == 5  # iterations 3, 4, 5 again
    steps = [row["step"] for row in csv.DictReader(open(tmp_path / "metrics.csv", encoding="utf-8"))]
    assert steps == ["1", "2", "3", "4", "5"]
    curve = list(csv.DictReader((tmp_path / "curve.csv").read_text().splitlines()[2:]))
    assert [r["iteration"] for r in curve] == ["1", "2", "3", "4", "5"] and curve[3]["eval_em"] == "0.3"
