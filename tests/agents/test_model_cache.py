"""The converted-model cache under concurrency: processes that ask for the same folder at once (a learner
and a rollout worker of a first Ray run) convert it once, and each finds it whole when it returns."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from agents import models


def slow_write(staging: Path, log: Path) -> None:
    """A stand-in converter: records who ran it, then takes a second to write the weights."""
    with open(log, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    (staging / "config.json").write_text("{}")
    time.sleep(1.0)
    (staging / "model.safetensors").write_bytes(b"weights")


def ask_for_folder(folder: str, log: str, start_at: float, out: str) -> None:
    """One process: wait for the common start, make the folder once, then read it as a loader would."""
    time.sleep(max(0.0, start_at - time.time()))
    models.make_folder_once(Path(folder), lambda staging: slow_write(staging, Path(log)))
    files = sorted(p.name for p in Path(folder).iterdir())
    Path(out).write_text(",".join(files) + "|" + Path(folder, "model.safetensors").read_text())


def test_two_processes_convert_once_and_both_read_the_whole_folder(tmp_path):
    folder, log = tmp_path / "cache" / "smollm2", tmp_path / "writers.log"
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0  # both children are up by then (a spawn takes about a second)
    outs = [tmp_path / f"out{i}.txt" for i in range(2)]
    children = [context.Process(target=ask_for_folder, args=(str(folder), str(log), start_at, str(out)))
                for out in outs]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
    assert [child.exitcode for child in children] == [0, 0]
    assert len(log.read_text().split()) == 1  # one conversion; the other process waited for it
    assert [out.read_text() for out in outs] == ["config.json,model.safetensors|weights"] * 2
    assert sorted(p.name for p in folder.parent.iterdir() if not p.name.endswith(".lock")) == ["smollm2"]


def test_a_complete_folder_is_kept_and_an_incomplete_one_is_replaced(tmp_path):
    folder, log = tmp_path / "smollm2", tmp_path / "writers.log"
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # weights missing: left by an interrupted older version
    models.make_folder_once(folder, lambda staging: slow_write(staging, log))
    assert (folder / "model.safetensors").read_text() == "weights" and len(log.read_text().split()) == 1
    models.make_folder_once(folder, lambda staging: slow_write(staging, log))
    assert len(log.read_text().split()) == 1  # complete: not written again
