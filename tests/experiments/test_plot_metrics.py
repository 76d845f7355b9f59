"""experiments/plot_metrics.py: curves from a Tracker metrics.csv, sparse columns, clear errors."""

import pytest

from agents.training.curves import moving_average, read_bands, read_curves
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


def write_run(folder, em_values):
    """A run whose evaluations carry intervals (as GRPO's eval/em_lo, eval/em_hi)."""
    with Tracker(folder, backend="none") as tracker:
        for step, em in enumerate(em_values, start=1):
            tracker.log({"rollout/reward": em, "eval/em": em, "eval/em_lo": em - 0.1, "eval/em_hi": em + 0.1}, step)
    return folder / "metrics.csv"


def test_bands_come_from_lo_and_hi_columns(tmp_path, metrics_csv):
    run = write_run(tmp_path / "seed0", [0.2, 0.3])
    assert read_bands(run, ["eval/em", "rollout/reward"]) == {
        "eval/em": [(1, pytest.approx(0.1), pytest.approx(0.3)), (2, pytest.approx(0.2), pytest.approx(0.4))]}
    assert read_bands(metrics_csv, ["eval/em"]) == {}


def test_moving_average_over_the_last_points():
    assert moving_average([(1, 1.0), (2, 3.0), (3, 5.0)], 2) == [(1, 1.0), (2, 2.0), (3, 4.0)]
    assert moving_average([(1, 1.0), (2, 3.0)], 1) == [(1, 1.0), (2, 3.0)]


def test_several_runs_share_the_panels(tmp_path):
    pytest.importorskip("matplotlib")
    runs = [str(write_run(tmp_path / name, [0.1, 0.2, 0.4])) for name in ("seed0", "seed1")]
    out = plot_metrics.main([*runs, "--keys", "rollout/reward", "eval/em", "--smooth", "2",
                             "--out", str(tmp_path / "c.png")])
    assert out.read_bytes().startswith(b"\x89PNG")


def test_labels_must_match_the_files_and_not_repeat(tmp_path, capsys):
    runs = [str(write_run(tmp_path / name / "run", [0.1])) for name in ("a", "b")]
    for extra, message in [(["--labels", "one"], "1 labels for 2 files"), ([], "repeat")]:
        with pytest.raises(SystemExit):
            plot_metrics.main([*runs, "--keys", "eval/em", "--out", str(tmp_path / "c.png"), *extra])
        assert message in capsys.readouterr().err
