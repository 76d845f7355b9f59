"""The dataset CLI: ``info`` and ``export`` on the fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from atommem_env.datasets.__main__ import main
from tests.support.datasets import write_hotpot_file

pytestmark = pytest.mark.usefixtures("fresh_dataset_cache")


def test_info_reports_files_records_skips_pools_and_episodes(fixtures_dir: Path, capsys) -> None:
    assert main(["info", "--data-dir", str(fixtures_dir), "--documents", "4,12"]) == 0
    out = capsys.readouterr().out
    assert "hotpotqa/dev: " in out and "hot" "pot_dev_distractor_v1.json" in out
    assert "records: 6 read, 3 usable, 3 skipped" in out
    assert "skipped hp-dev-3 (no answer)" in out
    assert "pool: 10 unique paragraphs" in out
    assert "hotpotqa/train" in out and "4 documents: 1 episodes (2 questions)" in out
    assert "12 documents: unavailable (pool of 4 paragraphs < 12)" in out
    assert "2wikimultihopqa/train: not available" in out
    assert "musique/dev" in out and "skipped 2hop__5_6 (no paragraphs)" in out


def test_info_needs_a_folder(capsys) -> None:
    assert main(["info"]) == 2
    assert "--data-dir" in capsys.readouterr().err


def test_export_writes_episodes_as_json_lines(tmp_path: Path) -> None:
    write_hotpot_file(tmp_path / "data" / "hotpotqa" / "hotpot_dev_distractor_v1.json", num_questions=40)
    out = tmp_path / "episodes.jsonl"
    argv = ["export", "--benchmark", "hotpotqa", "--num-documents", "120", "--count", "3", "--seed", "0",
            "--data-dir", str(tmp_path / "data"), "--out", str(out)]
    # Run as a module, as users do; the file must match a second, in-process run byte for byte.
    subprocess.run([sys.executable, "-m", "atommem_env.datasets", *argv], check=True, capture_output=True,
                   cwd=Path(__file__).resolve().parents[2])
    first = out.read_bytes()
    assert main(argv) == 0
    assert out.read_bytes() == first
    records = [json.loads(line) for line in first.decode().splitlines()]
    assert [r["index"] for r in records] == [0, 1, 2]
    assert all(len(r["documents"]) == 120 and r["context"].startswith("Document 1:\n") for r in records)
    assert records[0]["episode_id"] == "hotpotqa/dev/120/0"


def test_export_reports_data_errors_with_exit_status_2(tmp_path: Path, capsys) -> None:
    code = main(["export", "--benchmark", "musique", "--data-dir", str(tmp_path), "--out", str(tmp_path / "x.jsonl")])
    assert code == 2
    assert "No MuSiQue dev file" in capsys.readouterr().err
