"""benchmarks/bench_grpo_step.py's accounting (no durations asserted: they depend on the machine and its load):
each route times the parts it has, on the threads it reports, and the parent keeps every repeat."""

from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from benchmarks import bench_grpo_step  # noqa: E402


def options(model: str, **overrides) -> argparse.Namespace:
    settings = {"model": model, "preset": "cpu-smoke", "steps": 2, "threads": 1, "lora_r": 2, "rewards": "mixed",
                "set": "--max-new-tokens 3 --kl-coef 0 --group-size 2 --rollout-batch-size 2"}
    return argparse.Namespace(**{**settings, **overrides})


@pytest.mark.parametrize("route", ["shared", "hf+lora"])
def test_a_route_times_rollout_update_and_sync_of_each_step_on_one_thread(route, tiny_lm_path, one_torch_thread):
    if route.endswith("+lora"):
        pytest.importorskip("peft")
    row = bench_grpo_step.measure_route(route, options(tiny_lm_path))
    assert row["route"] == route and len(row["steps"]) == 2
    assert row["learner_threads"] == 1 and row["engine_threads"] == [1]
    for step in row["steps"]:
        assert step["episodes"] == 2 and 1 <= step["turns"] <= 6  # cpu-smoke: 3 turns at most
        assert 1 <= step["generated_tokens"] <= 3 * step["turns"] and step["prompt_tokens"] > 0
        assert step["rollout_s"] > 0 and step["update_s"] > 0
        assert step["forwarded_tokens"] == step["generated_tokens"]  # mixed rewards: every sample forwarded
        assert step["step_s"] == pytest.approx(step["rollout_s"] + step["update_s"] + step["sync_s"])
        # grpo_train.py's one process shares the model: nothing to sync; an engine loads the weights
        assert (step["sync_s"] > 0) == (route != "shared")
    assert (row["engine_start_s"] > 0) == (route != "shared")


def test_the_parent_interleaves_routes_per_repeat_and_keeps_failures(tiny_lm_path, tmp_path, monkeypatch, capsys):
    def child(route, opts):
        if route == "hf":
            return {"route": route, "error": "engine failed"}
        steps = [{part: 1.0 for part in bench_grpo_step.PARTS} | {"generated_tokens": 10}] * opts.steps
        return {"route": route, "learner_build_s": 1.0, "engine_start_s": 0.0, "steps": steps}

    monkeypatch.setattr(bench_grpo_step, "run_child", child)
    out = tmp_path / "step.json"
    argv = ["--model", tiny_lm_path, "--routes", "shared", "hf", "--repeats", "2", "--json", str(out)]
    assert bench_grpo_step.main(argv) == 0
    record = json.loads(out.read_text())
    assert [(r["repeat"], r["route"]) for r in record["rows"]] == [(0, "shared"), (0, "hf"), (1, "shared"), (1, "hf")]
    assert record["threads"] == 1 and "cpu_flags" in record["machine"]
    table = capsys.readouterr().out
    assert "repeat 0 hf: failed" in table and "10" in table  # steady generated tokens/s: 10 tokens in 1 s
