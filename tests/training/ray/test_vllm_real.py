"""agents/training/ray/vllm_engine.py on a real vLLM (skipped where vLLM is not installed, as in the project's
own environment). docs/DISTRIBUTED.md shows how to run it with vLLM's CPU build in a virtual environment
of its own: generation with token ids and logprobs, weight sync through vLLM's own loader, and sleep
mode (GPU build) or its absence (CPU build)."""

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
    from agents.training.ray.engine_config import EngineConfig
    from agents.training.ray.engines import make_engine

    model = os.environ.get("ATOMMEM_VLLM_TEST_MODEL") or resolve_model("smollm2")
    config = EngineConfig(kind="vllm", model=model, max_new_tokens=8, max_context=1024, temperature=1.0, top_p=1.0,
                          sleep_mode=not on_cpu())  # the CPU build has none
    return make_engine(config), model


def on_cpu():
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


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
    # Flip the token embeddings, and lm_head with them where they are tied (SmolLM2): a learner's state dict
    # holds one tensor under both names. vLLM loads lm_head.weight into the shared parameter too, so
    # flipping embed_tokens alone is undone by lm_head's unflipped copy.
    embed = state["model.embed_tokens.weight"]
    vllm_engine.load_weights({k: v.flip(0) if v.data_ptr() == embed.data_ptr() else v for k, v in state.items()})
    assert greedy_ids(vllm_engine) != before  # the engine generates from the new weights
    vllm_engine.load_weights(state)
    assert greedy_ids(vllm_engine) == before  # and back: nothing else changed


def test_sleep_and_wake(engine):
    from agents.training.ray.engine_config import EngineConfig
    from agents.training.ray.engines import make_engine
    from atommem_env.errors import ConfigError

    vllm_engine, model = engine
    before = greedy_ids(vllm_engine)
    vllm_engine.sleep()
    if on_cpu():  # nothing to release: the engine stays usable
        with pytest.raises(ConfigError, match="CPU build has no sleep mode"):
            make_engine(EngineConfig(kind="vllm", model=model, sleep_mode=True))
    else:
        with pytest.raises(RuntimeError, match="call wake"):
            vllm_engine.policy(greedy=True)
    vllm_engine.wake()
    assert greedy_ids(vllm_engine) == before


def test_each_worker_reports_its_torch_threads(engine):
    """On the CPU build, one per core vLLM bound (VLLM_CPU_OMP_THREADS_BIND); benchmarks report them."""
    vllm_engine, _ = engine
    threads = vllm_engine.torch_threads()
    assert len(threads) == 1 and threads[0] >= 1  # one worker (tensor_parallel_size=1)
    if on_cpu() and os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto") == "auto":
        assert threads[0] <= max(1, (os.cpu_count() or 1) - 1)  # auto keeps a core for the engine core
