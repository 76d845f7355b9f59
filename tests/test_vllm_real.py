"""experiments/vllm_engine.py on a real vLLM (skipped where vLLM is not installed, as in the project's
own environment). docs/DISTRIBUTED.md shows how to run it with vLLM's CPU build in a virtual environment
of its own: generation with token ids and logprobs, and weight sync through vLLM's own loader."""

from __future__ import annotations

import os

import pytest

vllm = pytest.importorskip("vllm", reason="needs vLLM (GPU host, or the CPU build: see docs/DISTRIBUTED.md)")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow

OBS = [{"system": "You answer briefly.", "user": "Where is Paris? Answer in one word."}]


@pytest.fixture(scope="module")
def engine():
    from agents.models import resolve_model
    from experiments.engines import EngineConfig, make_engine

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GB of KV cache on the CPU build
    model = os.environ.get("ATOMMEM_VLLM_TEST_MODEL") or resolve_model("smollm2")
    config = EngineConfig(kind="vllm", model=model, max_new_tokens=8, max_context=1024, temperature=1.0, top_p=1.0)
    return make_engine(config), model


def greedy_ids(engine):
    return [c.response_ids for c in engine.policy(greedy=True).act(OBS)]


def test_the_engine_generates_token_ids_and_logprobs(engine):
    vllm_engine, _ = engine
    (completion,) = vllm_engine.policy(greedy=False).act(OBS)
    assert completion.prompt_ids and completion.response_ids
    assert len(completion.logprobs) == len(completion.response_ids) and all(lp <= 0 for lp in completion.logprobs)


def test_weights_sync_through_vllms_own_loader(engine):
    from transformers import AutoModelForCausalLM

    vllm_engine, model = engine
    state = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).state_dict()
    before = greedy_ids(vllm_engine)
    vllm_engine.load_weights({k: v.flip(0) if k.endswith("embed_tokens.weight") else v for k, v in state.items()})
    assert greedy_ids(vllm_engine) != before  # the engine generates from the new weights
    vllm_engine.load_weights(state)
    assert greedy_ids(vllm_engine) == before  # and back: nothing else changed
