"""experiments/plot_metrics.py: curves from a Tracker metrics.csv, sparse columns, clear errors."""

import pytest

from agents.training.curves import read_curves
from agents.training.tracking import Tracker
from experiments import plot_metrics


@pytest.fixture
def metrics_csv(tmp_path):
    with Tracker(tmp_path, backend="none") as tracker:
        for step in range(1, 5):
            metrics = {"train/loss": 1.0 / step}
            if step % 2 == 0:
                metrics["eval/em"] = 0.1 * step
            tracker.log(metrics, step)
    return tmp_path / "metrics.csv"


def test_sparse_columns_keep_only_logged_steps(metrics_csv):
    curves = read_curves(metrics_csv, ["train/loss", "eval/em"])
    assert [s for s, _ in curves["train/loss"]] == [1, 2, 3, 4]
    assert curves["eval/em"] == [(2, pytest.approx(0.2)), (4, pytest.approx(0.4))]


def test_writes_a_png(metrics_csv, tmp_path):
    pytest.importorskip("matplotlib")
    out = plot_metrics.main([str(metrics_csv), "--keys", "train/loss", "eval/em", "--out", str(tmp_path / "c.png")])
    assert out.read_bytes().startswith(b"\x89PNG")


def test_unknown_key_names_the_columns(metrics_csv, tmp_path, capsys):
    with pytest.raises(SystemExit):
        plot_metrics.main([str(metrics_csv), "--keys", "train/lossy", "--out", str(tmp_path / "c.png")])
    err = capsys.readouterr().err
    assert "no column train/lossy" in err and "it has: step, eval/em, train/loss" in err


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        plot_metrics.main([str(tmp_path / "nope.csv"), "--keys", "x", "--out", str(tmp_path / "c.png")])
    assert "no such file" in capsys.readouterr().err
