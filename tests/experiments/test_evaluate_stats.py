"""experiments/evaluate.py: interval columns in the tables, and the paired ``--compare`` mode."""

import csv
import json

import pytest

from agents.training import evaluation
from agents.training.comparison import COMPARE_COLUMNS, compare_runs
from experiments import evaluate

TINY = "AtomMem-Synthetic-Tiny-v0"
OLD_COLUMNS = [*evaluation.COLUMNS, "reward", "seconds"]  # results.csv before intervals: kept as they were


def play(out, policy, *extra, episodes=6):
    evaluate.main(["--policy", policy, "--env-ids", TINY, "--episodes", str(episodes), "--batch-size", "3",
                   "--out-dir", str(out), "--no-plots", *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for policy in ("heuristic", "no-memory"):
        play(root / policy, policy)
    return root


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_results_csv_keeps_its_columns_and_appends_per_episode_em_and_intervals(runs):
    with open(runs / "heuristic" / "results.csv", newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header[:len(OLD_COLUMNS)] == OLD_COLUMNS
    assert header[len(OLD_COLUMNS):] == [*evaluation.INTERVAL_COLUMNS, "env_options", "protocol", "ablation",
                                         "copied_creates"]
    (row,) = read_csv(runs / "heuristic" / "results.csv")
    assert 0.5 < float(row["copied_creates"]) <= 1.0  # the heuristic stores sentences of its chunks
    for metric in ("em", "f1", "episode_em", "episode_f1"):
        assert float(row[f"{metric}_lo"]) <= float(row[metric]) <= float(row[f"{metric}_hi"])
    assert float(row["em_hi"]) > float(row["em_lo"])  # the heuristic gets some right, not all: a real interval


def test_results_md_shows_estimates_with_their_interval(runs):
    (row,) = read_csv(runs / "heuristic" / "results.csv")
    text = (runs / "heuristic" / "results.md").read_text()
    header = text.splitlines()[0]
    assert "| em | episode_em | f1 | episode_f1 |" in header
    cell = f"{float(row['em']):.3f} [{float(row['em_lo']):.3f}, {float(row['em_hi']):.3f}]"
    assert f"| {cell} |" in text


def test_format_cell_without_bounds_shows_the_point_only():
    assert evaluation.format_cell({"em": 0.5}, "em") == "0.500"
    assert evaluation.format_cell({"em": 0.5, "em_lo": 0.25, "em_hi": 0.75}, "em") == "0.500 [0.250, 0.750]"
    assert evaluation.format_cell({"episodes": 3}, "episodes") == "3"


def test_resamples_flag_is_validated():
    with pytest.raises(SystemExit, match="--resamples must be at least 100"):
        evaluate.parse_args(["--resamples", "10"])


def test_compare_prints_and_writes_the_paired_table(runs, tmp_path, capsys):
    evaluate.main(["--compare", str(runs / "no-memory"), str(runs / "heuristic"), "--out-dir", str(tmp_path)])
    printed = capsys.readouterr().out
    (row,) = read_csv(tmp_path / "compare.csv")
    assert list(row) == list(COMPARE_COLUMNS)
    assert (row["env_id"], row["policy_a"], row["policy_b"], row["episodes"]) == (TINY, "no-memory", "heuristic", "6")
    assert (row["run_a"], row["run_b"]) == ("no-memory", "heuristic")  # the folders: checkpoints share a policy name
    heuristic = read_csv(runs / "heuristic" / "results.csv")[0]
    no_memory = read_csv(runs / "no-memory" / "results.csv")[0]
    assert float(row["em_b"]) == pytest.approx(float(heuristic["em"]))
    assert float(row["em_diff"]) == pytest.approx(float(heuristic["em"]) - float(no_memory["em"]))
    assert float(row["em_diff_lo"]) <= float(row["em_diff"]) <= float(row["em_diff_hi"])
    assert 0 <= float(row["mcnemar_p"]) <= 1
    assert f"| {TINY} | 6 |" in printed and (tmp_path / "compare.md").read_text() in printed + "\n"


def test_compare_of_a_run_with_itself_finds_no_difference(runs):
    (row,) = compare_runs(runs / "heuristic", runs / "heuristic" / "trajectories.jsonl")
    assert row["run_a"] == row["run_b"] == "heuristic"
    assert (row["em_diff"], row["em_diff_lo"], row["em_diff_hi"]) == (0.0, 0.0, 0.0)
    assert (row["a_only"], row["b_only"], row["mcnemar_p"]) == (0, 0, 1.0)


def test_compare_refuses_runs_with_another_seed(runs, tmp_path):
    play(tmp_path / "other", "heuristic", "--seed", "7")
    with pytest.raises(SystemExit, match="not play the same episodes.*Seeds.*different --seed"):
        evaluate.main(["--compare", str(runs / "no-memory"), str(tmp_path / "other")])


def test_compare_refuses_runs_with_other_env_ids_or_episode_counts(runs, tmp_path):
    evaluate.main(["--policy", "no-memory", "--episodes", "2", "--out-dir", str(tmp_path / "synthetic"), "--no-plots"])
    with pytest.raises(SystemExit, match="Env ids"):
        evaluate.main(["--compare", str(runs / "heuristic"), str(tmp_path / "synthetic")])
    play(tmp_path / "short", "no-memory", episodes=4)
    with pytest.raises(SystemExit, match="2 only in .*heuristic.*different --episodes"):
        evaluate.main(["--compare", str(runs / "heuristic"), str(tmp_path / "short")])


def rewrite(source, target, change):
    target.mkdir()
    lines = [json.loads(line) for line in (source / "trajectories.jsonl").read_text().splitlines()]
    change(lines)
    (target / "trajectories.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_compare_refuses_episodes_whose_questions_differ(runs, tmp_path):
    rewrite(runs / "heuristic", tmp_path / "edited", lambda lines: lines[2]["result"]["golds"].__setitem__(0, "x"))
    with pytest.raises(SystemExit, match="episode 2 .*different gold answers"):
        evaluate.main(["--compare", str(runs / "no-memory"), str(tmp_path / "edited")])


def test_compare_refuses_unreadable_runs(runs, tmp_path):
    with pytest.raises(SystemExit, match="No trajectories.jsonl"):
        evaluate.main(["--compare", str(runs / "heuristic"), str(tmp_path / "nowhere")])
    rewrite(runs / "heuristic", tmp_path / "mixed", lambda lines: lines[0].__setitem__("policy", "random"))
    with pytest.raises(SystemExit, match="several policies"):
        evaluate.main(["--compare", str(runs / "heuristic"), str(tmp_path / "mixed")])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "trajectories.jsonl").write_text('{"env_id": \n')
    with pytest.raises(SystemExit, match="not valid JSON.*--resume"):
        evaluate.main(["--compare", str(runs / "heuristic"), str(tmp_path / "broken")])


def test_compare_takes_no_evaluation_flags(runs, capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--compare", str(runs / "heuristic"), str(runs / "no-memory"), "--episodes", "3"])
    assert "unrecognized arguments: --episodes" in capsys.readouterr().err
