"""Where data comes from: explicit arguments, ATOMMEM_DATA_DIR, the hub (faked), the final error."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from atommem_env.datasets import HubSpec, canonical_benchmark, load_benchmark, locate, sources
from atommem_env.errors import ConfigError, DataError
from tests.support.datasets import write_hotpot_file

pytestmark = pytest.mark.usefixtures("fresh_dataset_cache")


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the optional 'datasets' package is not installed."""
    monkeypatch.setattr(sources, "_datasets_available", lambda: False)


def test_data_dir_with_benchmark_subfolders(fixtures_dir: Path) -> None:
    for benchmark, name in [("hotpotqa", "hotpot_dev_distractor_v1.json"), ("2wikimultihopqa", "dev.json"),
                            ("musique", "musique_ans_v1.0_dev.jsonl")]:
        location = locate(benchmark, "dev", data_dir=fixtures_dir)
        assert len(location.files) == 1 and location.files[0].endswith(name)
    assert locate("musique", "train", data_dir=fixtures_dir).files[0].endswith("musique_ans_v1.0_train.json")


def test_subset_names_and_files_directly_inside(tmp_path: Path, fixtures_dir: Path) -> None:
    shutil.copy(fixtures_dir / "hotpotqa" / "hotpot_dev_distractor_v1.json",
                tmp_path / "hotpot_dev_distractor_subset.json")
    assert locate("HotpotQA", "validation", data_dir=tmp_path).files[0].endswith("hotpot_dev_distractor_subset.json")


def test_ambiguous_matches_ask_for_data_files(tmp_path: Path, fixtures_dir: Path) -> None:
    for name in ("dev_a.json", "dev_b.json"):
        shutil.copy(fixtures_dir / "2wikimultihopqa" / "dev.json", tmp_path / name)
    with pytest.raises(DataError, match=r"Several 2WikiMultihopQA dev files.*data_files="):
        locate("2wikimultihopqa", "dev", data_dir=tmp_path)


def test_explicit_data_dir_without_match_is_an_error_not_a_fallback(tmp_path: Path, monkeypatch, fixtures_dir) -> None:
    monkeypatch.setenv("ATOMMEM_DATA_DIR", str(fixtures_dir))
    with pytest.raises(DataError, match=r"No MuSiQue dev file in data_dir=.*musique_ans_v1.0_dev.jsonl"):
        locate("musique", "dev", data_dir=tmp_path)


def test_data_files_relative_to_data_dir(fixtures_dir: Path) -> None:
    location = locate("hotpotqa", "dev", data_dir=fixtures_dir, data_files="hotpotqa/hotpot_train_v1.1.json")
    assert location.files == (str((fixtures_dir / "hotpotqa" / "hotpot_train_v1.1.json").resolve()),)
    with pytest.raises(DataError, match=r"No HotpotQA file at .*missing.json"):
        locate("hotpotqa", "dev", data_files=[str(fixtures_dir / "missing.json")])


def test_environment_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_hotpot_file(tmp_path / "hotpotqa" / "hotpot_dev_distractor_v1.json", num_questions=30)
    monkeypatch.setenv("ATOMMEM_DATA_DIR", str(tmp_path))
    source = load_benchmark("hotpotqa", num_documents=100)
    assert source.location.files[0].startswith(str(tmp_path.resolve()))


def test_nothing_found_lists_every_place_tried(monkeypatch, tmp_path: Path, no_hub) -> None:
    monkeypatch.setenv("ATOMMEM_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as info:
        load_benchmark("musique")
    message = str(info.value)
    assert "ATOMMEM_DATA_DIR" in message and str(tmp_path) in message
    assert "musique_ans_v1.0_dev.jsonl" in message and "not installed" in message
    assert "data_dir=" in message and "pip install datasets" in message


def test_unknown_benchmark_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'hotpotqa'"):
        canonical_benchmark("hotpotq")
    assert canonical_benchmark("2Wiki-MultihopQA") == "2wikimultihopqa"
    with pytest.raises(ConfigError, match="Unknown split 'test'"):
        load_benchmark("hotpotqa", split="test")


def _fake_datasets(monkeypatch: pytest.MonkeyPatch, rows: list[dict], calls: list) -> None:
    module = types.ModuleType("datasets")

    def load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        return rows

    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)
    monkeypatch.setattr(sources, "_datasets_available", lambda: True)


def test_hub_path_with_a_fake_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"id": f"h{i}", "question": f"Q{i}?", "answer": f"A{i}", "type": "bridge", "level": "hard",
             "supporting_facts": {"title": [f"T{i}-0"], "sent_id": [0]},
             "context": {"title": [f"T{i}-{p}" for p in range(10)],
                         "sentences": [[f"S{i}-{p}.", " More."] for p in range(10)]}} for i in range(30)]
    calls: list = []
    _fake_datasets(monkeypatch, rows, calls)
    source = load_benchmark("hotpotqa", split="dev", num_documents=200)
    assert calls == [("hotpotqa/hotpot_qa", "distractor", {"split": "validation"})]
    episode = source.episode(0, np.random.default_rng(0))
    assert len(episode.documents) == 200 and "T0-0\nS0-0. More." in episode.documents
    assert source.location.hub == HubSpec("hotpotqa/hotpot_qa", "validation", name="distractor")
    load_benchmark("hotpotqa", split="dev", num_documents=250)
    assert len(calls) == 1  # cached per process


def test_hub_specs_for_2wiki_and_musique(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    _fake_datasets(monkeypatch, [], calls)
    assert locate("2wikimultihopqa", "train").hub.data_files.endswith("xanhho/2WikiMultihopQA/train.parquet")
    assert locate("musique", "dev").hub.data_files.endswith("dgslibisey/MuSiQue/musique_ans_v1.0_dev.jsonl")
    with pytest.raises(DataError, match="no musique records|holds an empty list"):
        load_benchmark("musique")  # the fake hub returns no rows
    assert calls[0] == ("json", None, {"split": "train",
                                       "data_files": "hf://datasets/dgslibisey/MuSiQue/musique_ans_v1.0_dev.jsonl"})


def test_hub_failure_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("datasets")

    def load_dataset(*args, **kwargs):
        raise ConnectionError("no network")

    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)
    monkeypatch.setattr(sources, "_datasets_available", lambda: True)
    with pytest.raises(DataError, match=r"Hub download failed .*ConnectionError: no network.*data_dir="):
        load_benchmark("2wikimultihopqa")


def test_importing_the_package_reads_nothing() -> None:
    import subprocess

    code = ("import sys, builtins; real = builtins.open\n"
            "def guard(f, *a, **k):\n"
            "    if str(f).endswith(('.json', '.jsonl')): raise SystemExit('opened ' + str(f))\n"
            "    return real(f, *a, **k)\n"
            "builtins.open = guard\n"
            "import atommem_env.datasets; assert 'datasets' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
