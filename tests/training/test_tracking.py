"""The tracker: raw CSV with a growing set of columns, resume truncation, and its three backends."""

import csv
import json
import sys
import types

import pytest

from agents.training.tracking import Tracker
from atommem_env.errors import ConfigError, DependencyError


def read_csv(run_dir):
    with open(run_dir / "metrics.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def test_new_keys_rewrite_the_csv_with_the_union_of_columns(tmp_path):
    with Tracker(tmp_path, backend="none") as tracker:
        tracker.log({"train/loss": 2.0}, step=1)
        tracker.log({"train/loss": 1.5, "eval/em": 0.25}, step=2)
        tracker.log({"train/loss": 1.25}, step=3)
    columns, rows = read_csv(tmp_path)
    assert columns == ["step", "eval/em", "train/loss"]
    assert rows == [
        {"step": "1", "eval/em": "", "train/loss": "2.0"},
        {"step": "2", "eval/em": "0.25", "train/loss": "1.5"},
        {"step": "3", "eval/em": "", "train/loss": "1.25"},
    ]


def test_logs_of_one_step_share_a_row_and_values_keep_every_digit(tmp_path):
    with Tracker(tmp_path, backend="none") as tracker:
        tracker.log({"train/loss": 0.1 + 0.2}, step=5)
        tracker.log({"eval/em": 1 / 3}, step=5)
    _, rows = read_csv(tmp_path)
    assert len(rows) == 1
    assert float(rows[0]["train/loss"]) == 0.1 + 0.2 and float(rows[0]["eval/em"]) == 1 / 3


def test_a_resumed_run_drops_the_steps_after_its_checkpoint(tmp_path):
    with Tracker(tmp_path, backend="none") as tracker:
        for step in range(1, 6):
            tracker.log({"train/loss": float(step)}, step=step)
    with Tracker(tmp_path, backend="none", resume=True) as tracker:
        tracker.truncate_after(3)
        tracker.log({"train/loss": 40.0, "train/lr": 1e-5}, step=4)
    columns, rows = read_csv(tmp_path)
    assert [row["step"] for row in rows] == ["1", "2", "3", "4"]
    assert columns == ["step", "train/loss", "train/lr"] and rows[3]["train/loss"] == "40.0"


def test_a_new_run_replaces_an_old_csv_and_writes_its_config(tmp_path):
    with Tracker(tmp_path, backend="none") as tracker:
        tracker.log({"old/metric": 1.0}, step=1)
    with Tracker(tmp_path, backend="none", config={"lr": 1e-5, "out_dir": tmp_path}) as tracker:
        tracker.log({"train/loss": 1.0}, step=1)
    columns, rows = read_csv(tmp_path)
    assert columns == ["step", "train/loss"] and len(rows) == 1
    assert json.loads((tmp_path / "config.json").read_text()) == {"lr": 1e-5, "out_dir": str(tmp_path)}
    assert not (tmp_path / "tensorboard").exists()


def test_bad_input_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="choose one of tensorboard, wandb, none"):
        Tracker(tmp_path, backend="mlflow")
    with pytest.raises(ConfigError, match="'train/loss' = 'low' is not a number"):
        Tracker(tmp_path, backend="none").log({"train/loss": "low"}, step=1)


def test_tensorboard_gets_the_scalars_and_hides_steps_a_resume_repeats(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'atommem[train]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with Tracker(tmp_path) as tracker:
        for step in (1, 2, 3):
            tracker.log({"train/loss": float(step)}, step=step)
    with Tracker(tmp_path, resume=True) as tracker:
        tracker.truncate_after(1)
        tracker.log({"train/loss": 20.0}, step=2)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(1, 1.0), (2, 20.0)]


def test_a_fresh_run_in_a_used_folder_hides_the_earlier_attempts_events(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'atommem[train]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with Tracker(tmp_path) as tracker:  # an attempt that stopped before its first checkpoint
        for step in (1, 2):
            tracker.log({"train/loss": float(step)}, step=step)
    with Tracker(tmp_path) as tracker:  # the same command again
        tracker.log({"train/loss": 10.0}, step=1)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(1, 10.0)]


def test_missing_tensorboard_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # makes `import tensorboard` fail
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    with pytest.raises(DependencyError, match=r"atommem\[train\].*--logger none"):
        Tracker(tmp_path)


def test_missing_wandb_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(DependencyError, match="pip install wandb"):
        Tracker(tmp_path, backend="wandb")


class FakeWandb(types.ModuleType):
    """Records what the tracker asks of wandb."""

    def __init__(self):
        super().__init__("wandb")
        self.inits, self.logged, self.finished = [], [], 0
        self.util = types.SimpleNamespace(generate_id=lambda: f"run{len(self.inits)}")

    def init(self, **kwargs):
        self.inits.append(kwargs)
        fake = self

        class Run:
            def log(self, metrics, step):
                fake.logged.append((step, metrics))

            def finish(self):
                fake.finished += 1

        return Run()


def test_wandb_logs_each_step_and_a_resume_continues_the_same_run(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    with Tracker(tmp_path, backend="wandb", config={"lr": 1.0}, project="p") as tracker:
        tracker.log({"train/loss": 1.0}, step=1)
    with Tracker(tmp_path, backend="wandb", project="p", resume=True) as tracker:
        tracker.log({"train/loss": 0.5}, step=2)
    first, second = fake.inits
    assert first["id"] == second["id"] == "run0" and second["resume"] == "allow" and first["resume"] is None
    assert first["project"] == "p" and first["config"] == {"lr": 1.0}
    assert fake.logged == [(1, {"train/loss": 1.0}), (2, {"train/loss": 0.5})] and fake.finished == 2
    assert len(read_csv(tmp_path)[1]) == 2  # the CSV is written whatever the backend


def test_an_api_key_in_the_config_reaches_neither_config_json_nor_wandb(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    key = "sk-test-0c4e1f9a"
    config = {"lr": 1.0, "api_key": key, "eval_policy_kwargs": json.dumps({"api_key": key, "temperature": 0})}
    with Tracker(tmp_path, backend="wandb", config=config):
        pass
    written = (tmp_path / "config.json").read_text()
    assert key not in written and key not in json.dumps(fake.inits[0]["config"])
    assert json.loads(written)["api_key"] == "<redacted>" and json.loads(written)["lr"] == 1.0
