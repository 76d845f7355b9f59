"""experiments/trl_grpo.py: a TRL run on the tiny test model writes its metrics and a model folder that
loads, and a real benchmark's dev split is refused before anything is loaded."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from atommem_env.errors import ConfigError  # noqa: E402
from experiments import trl_grpo  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def test_a_run_writes_its_metrics_and_a_model_that_loads(tmp_path, tiny_lm_path, monkeypatch, capsys):
    from agents.models import load_causal_lm

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    final = trl_grpo.main(["--model", tiny_lm_path, "--out-dir", str(tmp_path), "--steps", "1", "--group-size", "2",
                           "--prompts-per-step", "1", "--max-turns", "2", "--max-new-tokens", "4", "--episodes", "3"])
    history = json.loads((tmp_path / "log_history.json").read_text())
    assert history[0]["step"] == 1 and "reward" in history[0]
    model, _ = load_causal_lm(str(final), "cpu")
    assert model.config.num_hidden_layers == 2
    assert str(final) in capsys.readouterr().out


def test_a_benchmarks_dev_split_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="dev split"):
        trl_grpo.main(["--env-id", "AtomMem-HotpotQA-200-v0", "--out-dir", str(tmp_path)])
