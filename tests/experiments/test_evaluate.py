"""experiments/evaluate.py: tables, resume after a crash, refusing to overwrite, plots and presets."""

import json
import sys
from pathlib import Path

import pytest

from agents.training import evaluation
from agents.training.plots import plot_point
from agents.training.rollout import Trajectory
from experiments import evaluate

SYNTHETIC = "AtomMem-Synthetic-v0"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(tmp_path, *extra):
    evaluate.main(["--episodes", "2", "--batch-size", "2", "--out-dir", str(tmp_path), "--no-plots", *extra])


def read_lines(tmp_path):
    return [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]


def test_evaluate_writes_tables_and_trajectories(tmp_path, capsys):
    evaluate.main(["--episodes", "3", "--batch-size", "2", "--out-dir", str(tmp_path), "--no-plots"])
    printed = capsys.readouterr().out
    assert "| AtomMem-Synthetic-v0 | heuristic | 3 |" in printed
    lines = read_lines(tmp_path)
    assert len(lines) == 3 and lines[0]["policy"] == "heuristic"
    assert (tmp_path / "results.csv").read_text().startswith("env_id,policy,episodes")
    assert not (tmp_path / "ops_per_turn.png").exists()


def test_episodes_csv_has_one_line_per_episode_in_index_order_with_its_scores(tmp_path):
    import csv

    evaluate.main(["--episodes", "3", "--batch-size", "2", "--out-dir", str(tmp_path), "--no-plots", "--seed", "5"])
    rows = list(csv.DictReader((tmp_path / "episodes.csv").open()))
    lines = {line["index"]: line for line in read_lines(tmp_path)}
    assert [(r["index"], r["seed"]) for r in rows] == [("0", "5"), ("1", "6"), ("2", "7")]
    for row in rows:
        line = lines[int(row["index"])]
        assert float(row["em"]) == sum(line["result"]["em"]) / len(line["result"]["em"])
        assert float(row["reward"]) == line["reward"] and int(row["turns"]) == len(line["turns"])
        assert row["env_id"] == "AtomMem-Synthetic-v0" and row["policy"] == "heuristic"
    # a resumed run rewrites the file over old and new episodes together
    evaluate.main(["--episodes", "4", "--out-dir", str(tmp_path), "--no-plots", "--seed", "5", "--resume"])
    assert [r["index"] for r in csv.DictReader((tmp_path / "episodes.csv").open())] == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--policy", "gpt"], "unknown"), (["--episodes", "0"], "at least 1"), (["--env-kwargs", "{bad"], "JSON"),
        (["--policy-kwargs", "[1]"], "JSON object"), (["--policy", "openai:model"], "MODEL@URL"),
    ],
)
def test_evaluate_rejects_bad_arguments(argv, message):
    with pytest.raises(SystemExit, match=message):
        evaluate.parse_args(argv)


def test_policy_options_the_policy_does_not_take_stop_the_run(tmp_path):
    with pytest.raises(SystemExit, match="unexpected keyword argument 'temperature'.*max_entries_per_turn"):
        run(tmp_path, "--policy-kwargs", '{"temperature": 0}')


def test_default_out_dir_names_are_path_safe_for_model_specs(tmp_path):
    name = Path(evaluation.fresh_run_dir("openai:AtomMem@http://host:8000/v1", root=tmp_path)).name
    assert name.startswith("openai_AtomMem-") and "/" not in name and ":" not in name


def test_trajectory_round_trips_through_a_stored_line(tmp_path):
    run(tmp_path)
    line = read_lines(tmp_path)[0]
    assert Trajectory.from_json(line).to_json() == {k: v for k, v in line.items() if k not in ("policy", "env_options")}


def test_resume_runs_only_missing_episodes_after_a_crash(tmp_path, monkeypatch, capsys):
    run(tmp_path)
    path = tmp_path / "trajectories.jsonl"
    first_two = path.read_text().splitlines()
    with open(path, "a") as handle:  # a crash in the middle of writing the next line
        handle.write(first_two[0][: len(first_two[0]) // 2])

    ran: list[int] = []
    real_rollout = evaluation.rollout

    def recording_rollout(*args, indices, **kwargs):
        ran.extend(indices)
        return real_rollout(*args, indices=indices, **kwargs)

    monkeypatch.setattr(evaluation, "rollout", recording_rollout)
    capsys.readouterr()
    evaluate.main(["--episodes", "4", "--batch-size", "2", "--out-dir", str(tmp_path), "--no-plots", "--resume"])

    assert ran == [2, 3]  # episodes 0 and 1 were taken from the file, not run again
    lines = path.read_text().splitlines()
    assert lines[:2] == first_two  # untouched, and the truncated half line is gone
    assert sorted(json.loads(line)["index"] for line in lines) == [0, 1, 2, 3]
    assert "| AtomMem-Synthetic-v0 | heuristic | 4 |" in capsys.readouterr().out
    assert "AtomMem-Synthetic-v0,heuristic,4," in (tmp_path / "results.csv").read_text()


def test_resume_of_a_finished_run_runs_nothing_and_gives_the_same_table(tmp_path, monkeypatch):
    run(tmp_path)
    before = (tmp_path / "results.md").read_text()
    monkeypatch.setattr(evaluation, "rollout", lambda *a, **k: pytest.fail("nothing should be re-run"))
    run(tmp_path, "--resume")
    assert (tmp_path / "results.md").read_text() == before


def test_resume_keeps_a_complete_last_line_that_lost_its_newline(tmp_path):
    run(tmp_path)
    path = tmp_path / "trajectories.jsonl"
    path.write_text(path.read_text().rstrip("\n"))
    run(tmp_path, "--resume", "--episodes", "3")
    assert [line["index"] for line in read_lines(tmp_path)] == [0, 1, 2]


def test_refuses_to_overwrite_without_resume(tmp_path):
    run(tmp_path)
    before = (tmp_path / "trajectories.jsonl").read_text()
    with pytest.raises(SystemExit, match="--resume"):
        run(tmp_path)
    assert (tmp_path / "trajectories.jsonl").read_text() == before


def test_resume_refuses_a_different_seed(tmp_path):
    run(tmp_path)
    with pytest.raises(SystemExit, match="seed"):
        run(tmp_path, "--resume", "--seed", "7")


def test_resume_refuses_a_corrupt_line_that_is_not_the_last(tmp_path):
    run(tmp_path)
    path = tmp_path / "trajectories.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    with pytest.raises(SystemExit, match=":2 is not valid JSON"):
        run(tmp_path, "--resume")


def test_plots_are_written_as_png(tmp_path):
    pytest.importorskip("matplotlib")
    evaluate.main(["--episodes", "2", "--out-dir", str(tmp_path)])
    for name in ("ops_per_turn.png", "em_by_documents.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE


def test_missing_matplotlib_skips_plots_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    evaluate.main(["--episodes", "1", "--out-dir", str(tmp_path)])
    assert (tmp_path / "results.md").exists() and not (tmp_path / "ops_per_turn.png").exists()
    assert "pip install matplotlib" in caplog.text and "--no-plots" in caplog.text


@pytest.mark.parametrize("env_id, options, point", [
    ("AtomMem-HotpotQA-400-v0", "{}", ("HotpotQA", 400)),
    ("AtomMem-2WikiMultihopQA-v0", "{}", ("2WikiMultihopQA", 200)),
    ("AtomMem-MemAgent-MuSiQue-800-v0", {}, ("MemAgent-MuSiQue", 800)),
    (SYNTHETIC, "{}", ("Synthetic", 40)),  # its episodes' own count, not the benchmarks' 200
    (SYNTHETIC, '{"num_documents": 8}', ("Synthetic", 8)),
    ("AtomMem-Synthetic-Tiny-v0", "{}", ("Synthetic-Tiny", 4)),
])
def test_plots_place_env_ids_by_their_episodes_document_count(env_id, options, point):
    assert plot_point({"env_id": env_id, "env_options": options}) == point


def test_the_plotted_count_is_the_episodes_own():
    import gymnasium as gym
    import numpy as np

    for env_id, options in ((SYNTHETIC, {}), (SYNTHETIC, {"num_documents": 8}), ("AtomMem-Synthetic-Tiny-v0", {})):
        episode = gym.make(env_id, **options).unwrapped.source.episode(0, np.random.default_rng(0))
        assert plot_point({"env_id": env_id, "env_options": options})[1] == len(episode.documents)


def test_plots_refuse_an_id_that_is_not_atommems():
    with pytest.raises(ValueError, match="not a registered AtomMem id"):
        plot_point({"env_id": "CartPole-v1"})


def test_presets_expand_env_ids():
    paper = evaluate.parse_args(["--preset", "paper"]).env_ids
    assert len(paper) == 9 and len(set(paper)) == 9
    assert "AtomMem-2WikiMultihopQA-800-v0" in paper and "AtomMem-MuSiQue-200-v0" in paper
    assert evaluate.parse_args(["--preset", "synthetic"]).env_ids == [SYNTHETIC]
    assert evaluate.parse_args([]).env_ids == [SYNTHETIC]
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--preset", "paper", "--env-ids", SYNTHETIC])
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--preset", "nope"])


def test_paper_preset_ids_are_registered():
    import gymnasium as gym

    import atommem_env  # noqa: F401

    assert set(evaluation.PRESETS["paper"]) <= set(gym.registry)


def test_default_out_dir_is_fresh_for_every_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = evaluate.parse_args([]).out_dir
    Path(first).mkdir(parents=True)
    second = evaluate.parse_args([]).out_dir
    assert first != second and first.startswith("runs/evaluate/heuristic-")
    with pytest.raises(SystemExit, match="--out-dir"):
        evaluate.parse_args(["--resume"])
