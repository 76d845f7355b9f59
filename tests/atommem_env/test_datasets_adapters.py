"""The three official-format adapters on hand-written fixtures, and their error paths."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from atommem_env.datasets import shapes
from atommem_env.datasets._records import read_records
from atommem_env.datasets.hotpotqa import load_hotpotqa, parse_hotpotqa
from atommem_env.datasets.musique import load_musique
from atommem_env.datasets.sources import BENCHMARKS
from atommem_env.datasets.twowiki import load_twowiki
from atommem_env.errors import DataError
from tests.conftest import shared_data_dir

pytestmark = pytest.mark.usefixtures("fresh_dataset_cache")


def test_hotpotqa_dev_renders_paragraphs_and_skips_bad_records(fixtures_dir: Path, caplog) -> None:
    path = fixtures_dir / "hotpotqa" / "hotpot_dev_distractor_v1.json"
    with caplog.at_level(logging.WARNING, logger="atommem_env.datasets"):
        parsed = load_hotpotqa(path)
    assert [s.id for s in parsed.samples] == ["hp-dev-1", "hp-dev-2", "hp-dev-5"]
    first = parsed.samples[0]
    assert first.question == "Which river flows through the capital of Lorvania?"
    assert first.answer == "Vessa"
    # Sentences are joined with no separator, as the reference does.
    assert first.paragraphs[0] == "Lorvania\nLorvania is a small country. Its capital is Brannick."
    assert len(first.paragraphs) == 4
    assert first.supporting_titles == ("Lorvania", "Brannick")
    assert first.aliases == ()
    assert parsed.skipped == (("hp-dev-3", "no answer"), ("hp-dev-4", "no paragraphs in 'context'"),
                              ("hp-dev-6", "supporting paragraph(s) ['Vell County'] not in 'context'"))
    # The skip is logged once, with the count, the file and the record ids.
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "Skipped 3 of 6" in message and "hp-dev-3" in message and str(path) in message


def test_hotpotqa_train_without_id_gets_stable_positional_ids(fixtures_dir: Path) -> None:
    parsed = load_hotpotqa(fixtures_dir / "hotpotqa" / "hotpot_train_v1.1.json", id_prefix="train")
    assert [s.id for s in parsed.samples] == ["train-0", "train-1"]


def test_hotpotqa_accepts_hub_row_shape() -> None:
    row = {"id": "5a8b", "question": "Q?", "answer": "A", "type": "bridge", "level": "hard",
           "supporting_facts": {"title": ["T1"], "sent_id": [0]},
           "context": {"title": ["T1", "T2"], "sentences": [["One.", " Two."], ["Three."]]}}
    sample = parse_hotpotqa([row], "hub:test").samples[0]
    assert sample.id == "5a8b"
    assert sample.paragraphs == ("T1\nOne. Two.", "T2\nThree.")
    assert sample.supporting_titles == ("T1",)


def test_twowiki_dev_parses_and_skips_record_without_context(fixtures_dir: Path) -> None:
    parsed = load_twowiki(fixtures_dir / "2wikimultihopqa" / "dev.json")
    assert [s.id for s in parsed.samples] == ["2w-dev-1", "2w-dev-2"]
    assert parsed.samples[0].paragraphs[0] == "Quiet Harbour\nQuiet Harbour is a 1950 film directed by Ivo Marr."
    assert parsed.samples[0].supporting_titles == ("Quiet Harbour", "Ivo Marr")
    assert parsed.skipped == (("2w-dev-3", "no paragraphs in 'context'"),)


def test_musique_jsonl_keeps_aliases_and_supporting_titles(fixtures_dir: Path) -> None:
    parsed = load_musique(fixtures_dir / "musique" / "musique_ans_v1.0_dev.jsonl")
    assert [s.id for s in parsed.samples] == ["2hop__1_2", "2hop__3_4"]
    first = parsed.samples[0]
    assert first.paragraphs[0] == "Port Aldo\nPort Aldo is the capital of the Aldo Islands."
    assert first.aliases == ("Vey Sea",)
    assert first.supporting_titles == ("Port Aldo", "Aldo Islands")
    assert dict(parsed.skipped) == {"2hop__5_6": "no paragraphs", "2hop__7_8": "no answer"}


def test_musique_json_list_copy_is_accepted(fixtures_dir: Path) -> None:
    parsed = load_musique(fixtures_dir / "musique" / "musique_ans_v1.0_train.json")
    assert [s.id for s in parsed.samples] == ["2hop__9_10"]


def test_musique_unanswerable_records_are_skipped() -> None:
    from atommem_env.datasets.musique import parse_musique

    records = [{"id": "u1", "question": "Q?", "answer": "A", "answerable": False,
                "paragraphs": [{"title": "T", "paragraph_text": "P", "is_supporting": True}]},
               {"id": "a1", "question": "Q?", "answer": "A", "answerable": True,
                "paragraphs": [{"title": "T", "paragraph_text": "P", "is_supporting": True}]}]
    parsed = parse_musique(records, "mem")
    assert [s.id for s in parsed.samples] == ["a1"] and parsed.skipped == (("u1", "unanswerable"),)


def test_missing_file_names_the_path_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "hotpot_dev_distractor_v1.json"
    with pytest.raises(DataError, match=r"No dataset file at .*nope.*data_dir="):
        load_hotpotqa(missing)


def test_truncated_json_list_is_a_data_error(fixtures_dir: Path) -> None:
    with pytest.raises(DataError, match=r"truncated.json.*not valid JSON.*line \d+"):
        load_hotpotqa(fixtures_dir / "broken" / "truncated.json")


def test_truncated_json_lines_names_the_line(fixtures_dir: Path) -> None:
    with pytest.raises(DataError, match=r"truncated.jsonl.*line 2"):
        load_musique(fixtures_dir / "broken" / "truncated.jsonl")


FIXTURE_FILES = {
    "hotpotqa": "hotpotqa/hotpot_dev_distractor_v1.json",
    "2wikimultihopqa": "2wikimultihopqa/dev.json",
    "musique": "musique/musique_ans_v1.0_dev.jsonl",
}
LOADERS = {"hotpotqa": load_hotpotqa, "2wikimultihopqa": load_twowiki, "musique": load_musique}
MISMATCHES = [(given, asked) for given in FIXTURE_FILES for asked in LOADERS if given != asked]


@pytest.mark.parametrize("given, asked", MISMATCHES, ids=[f"{g}-as-{a}" for g, a in MISMATCHES])
def test_a_file_of_another_benchmark_is_refused(fixtures_dir: Path, given: str, asked: str) -> None:
    """Every wrong pairing is refused, naming the file, what it looks like and what was expected."""
    path = fixtures_dir / FIXTURE_FILES[given]
    with pytest.raises(DataError) as caught:
        LOADERS[asked](path)
    message = str(caught.value)
    assert str(path) in message
    assert f"looks like a {shapes.DISPLAY[given]} file, not {shapes.DISPLAY[asked]}" in message
    assert shapes.expected_marks(asked) in message
    assert f"benchmark={given!r}" in message


def test_a_suggested_benchmark_is_always_a_valid_value(fixtures_dir: Path) -> None:
    """No message suggests a value that is not a benchmark (it once said 'hotpotqa or 2wikimultihopqa')."""
    for given, asked in MISMATCHES:
        with pytest.raises(DataError) as caught:
            LOADERS[asked](fixtures_dir / FIXTURE_FILES[given])
        suggested = re.findall(r"benchmark='([^']*)'", str(caught.value))
        assert suggested and all(name in BENCHMARKS for name in suggested)


@pytest.mark.parametrize("real_benchmark", ["hotpotqa", "2wikimultihopqa"])
def test_the_real_files_are_refused_as_each_other(real_benchmark: str) -> None:
    """The motivating case: the real HotpotQA dev file given as 2Wiki data loaded as 84 episodes."""
    other = "2wikimultihopqa" if real_benchmark == "hotpotqa" else "hotpotqa"
    shared = shared_data_dir()
    if shared is None:
        pytest.skip("needs ../shared/data")
    real = {"hotpotqa": shared / "hotpotqa" / "hotpot_dev_distractor_subset.json",
            "2wikimultihopqa": shared / "2wikimultihopqa" / "dev_subset.json"}[real_benchmark]
    with pytest.raises(DataError, match=f"looks like a {shapes.DISPLAY[real_benchmark]} file"):
        LOADERS[other](real)


def test_records_without_any_mark_are_accepted(tmp_path: Path) -> None:
    """Derived copies that dropped type, level and evidences still load (nothing tells them apart)."""
    record = {"_id": "a", "question": "Q?", "answer": "A", "supporting_facts": [["T", 0]],
              "context": [["T", ["A is here."]]]}
    path = tmp_path / "plain.json"
    path.write_text(json.dumps([record]))
    assert len(load_hotpotqa(path).samples) == len(load_twowiki(path).samples) == 1


def test_a_byte_order_mark_is_accepted(fixtures_dir: Path, tmp_path: Path) -> None:
    """Files saved by editors that add a UTF-8 BOM load like the official ones."""
    for name in ("hotpotqa/hotpot_dev_distractor_v1.json", "musique/musique_ans_v1.0_dev.jsonl"):
        original = fixtures_dir / name
        with_bom = tmp_path / original.name
        with_bom.write_bytes(b"\xef\xbb\xbf" + original.read_bytes())
        loader = load_hotpotqa if "hotpot" in name else load_musique
        assert loader(with_bom).samples == loader(original).samples


@pytest.mark.parametrize("facts", [None, "Lorvania", [["Lorvania"]], [[0, 1]], [], {"title": ["T"]}],
                         ids=["missing", "string", "no-index", "non-string-title", "empty", "dict-unpaired"])
def test_malformed_supporting_facts_are_a_skip_reason(tmp_path: Path, facts: object) -> None:
    """Without well-formed gold titles the gold-paragraph check cannot run: skipped, not passed."""
    good = {"_id": "good", "question": "Q?", "answer": "A", "supporting_facts": [["T", 0]],
            "context": [["T", ["A is here."]]], "type": "bridge", "level": "easy"}
    bad = {**good, "_id": "bad"}
    if facts is None:
        del bad["supporting_facts"]
    else:
        bad["supporting_facts"] = facts
    path = tmp_path / "records.json"
    path.write_text(json.dumps([good, bad]))
    parsed = load_hotpotqa(path)
    assert [s.id for s in parsed.samples] == ["good"]
    assert parsed.skipped[0][0] == "bad" and "supporting_facts" in parsed.skipped[0][1]


@pytest.mark.parametrize("name, pattern", [("not_json.json", "neither a JSON list nor JSON Lines"),
                                           ("object.json", "no hotpotqa records")])
def test_non_dataset_files_are_rejected(fixtures_dir: Path, name: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        load_hotpotqa(fixtures_dir / "broken" / name)


def test_file_where_every_record_is_bad_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"_id": "x1", "question": "Q?", "answer": "", "context": [["T", ["s"]]]}]')
    with pytest.raises(DataError, match=r"no usable hotpotqa records.*'x1': no answer"):
        load_hotpotqa(path)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("  \n")
    with pytest.raises(DataError, match="is empty"):
        read_records(path)


def test_paragraphs_of_records_without_their_gold_stay_in_the_pool(fixtures_dir: Path) -> None:
    from atommem_env.datasets import clear_cache, load_benchmark

    parsed = load_hotpotqa(fixtures_dir / "hotpotqa" / "hotpot_dev_distractor_v1.json")
    assert parsed.orphans, "the record skipped for a missing gold paragraph keeps its paragraphs"
    clear_cache()
    source = load_benchmark("hotpotqa", data_dir=fixtures_dir, num_documents=4, questions_per_episode="single")
    assert set(parsed.orphans) <= set(source.corpus.pool)
