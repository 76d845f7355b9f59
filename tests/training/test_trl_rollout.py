"""TRL's GRPOTrainer on an atommem env through agents/training/trl_rollout.py: the row layout keeps
episodes whole and gives TRL's advantages the values of our own GRPO, bad settings are refused, and
one real training step of a tiny model on AtomMem-Synthetic-Tiny-v0 learns from the env's rewards in
both action formats."""

import json
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
trl = pytest.importorskip("trl")

import numpy as np  # noqa: E402

from agents.training.envs import EnvSpec  # noqa: E402
from agents.training.errors import RunError  # noqa: E402
from agents.training.grpo import group_advantages  # noqa: E402
from agents.training.rollout import Trajectory, Turn, episode_group  # noqa: E402
from agents.training.trl_rollout import (  # noqa: E402
    TRLRollout,
    env_reward,
    episode_prompt,
    paper_settings,
    parse_episode_prompt,
)
from atommem_env.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

ENV = EnvSpec("AtomMem-Synthetic-Tiny-v0")


def turn(prompt, response):
    return Turn(user="u", response="r", ops=[], errors=[], op_counts={}, memory_size=0, phase="reading",
                prompt_ids=prompt, response_ids=response, logprobs=[-0.5] * len(response))


def episode(index, seed, reward, turns):
    trajectory = Trajectory("AtomMem-Synthetic-Tiny-v0", seed, f"synthetic/{index}", index, "system", reward=reward)
    trajectory.turns = [turn([7, 8, n], [9] * (n + 1)) for n in range(turns)]
    return trajectory


def test_each_episode_fills_max_turns_rows_with_its_turns_then_masked_fillers():
    rollout = TRLRollout(ENV, group_size=2, max_turns=3)
    rows = rollout.rows([episode(0, 5, 1.0, 2), episode(0, 5, 0.0, 3)], pad_token_id=0, eos_token_id=2)
    assert rows["prompt_ids"] == [[7, 8, 0], [7, 8, 1], [0], [7, 8, 0], [7, 8, 1], [7, 8, 2]]
    assert rows["completion_ids"] == [[9], [9, 9], [2], [9], [9, 9], [9, 9, 9]]
    assert rows["env_mask"] == [[1], [1, 1], [0], [1], [1, 1], [1, 1, 1]]  # the filler adds nothing to the loss
    assert rows["logprobs"][1] == [-0.5, -0.5] and rows["logprobs"][2] == [0.0]
    assert rows["episode_reward"] == [1.0] * 3 + [0.0] * 3
    assert env_reward(rows["completion_ids"], rows["episode_reward"]) == rows["episode_reward"]


def test_trls_group_advantages_on_the_rows_are_our_grpos_advantages():
    """TRL subtracts the mean reward of each num_generations rows (scale_rewards="none"); with every
    episode in max_turns rows that is the mean episode reward of the group, as in agents.training.grpo."""
    rollout = TRLRollout(ENV, group_size=3, max_turns=4)
    played = [episode(0, 1, r, n) for r, n in ((1.0, 1), (0.0, 4), (0.5, 2))] + \
             [episode(3, 2, r, n) for r, n in ((0.0, 3), (1.0, 2), (1.0, 4))]
    rows = rollout.rows(played, pad_token_id=0, eos_token_id=2)
    rewards = np.array(rows["episode_reward"]).reshape(-1, rollout.num_generations)
    trl_advantages = (rewards - rewards.mean(axis=1, keepdims=True)).reshape(-1)
    ours = group_advantages([t.reward for t in played], [episode_group(t) for t in played])
    per_row = np.repeat(ours, rollout.max_turns)
    assert np.allclose(trl_advantages, per_row)


def test_dataset_prompts_name_their_episodes_and_foreign_prompts_are_refused():
    rollout = TRLRollout(ENV, group_size=2, max_turns=2)
    assert rollout.dataset([4, 9], seed=10)["prompt"] == [episode_prompt(4, 10), episode_prompt(9, 11)]
    assert parse_episode_prompt(episode_prompt(4, 10)) == (4, 10)
    for prompt in ("What is 2 + 2?", [{"role": "user", "content": "atommem episode 1 seed 2"}]):
        with pytest.raises(RunError, match="names no atommem episode"):
            parse_episode_prompt(prompt)


def test_bad_layouts_and_settings_are_refused():
    with pytest.raises(ConfigError, match="group_size >= 2"):
        TRLRollout(ENV, group_size=1, max_turns=4)
    with pytest.raises(ConfigError, match="max_turns=6 differs"):
        TRLRollout(EnvSpec(ENV.env_id, {"max_turns": 6}), group_size=2, max_turns=4)
    rollout = TRLRollout(ENV, group_size=2, max_turns=4)
    with pytest.raises(ConfigError, match=r"\['num_generations'\] set"):
        rollout.config("out", prompts_per_step=1, num_generations=8)
    model = SimpleNamespace(training=True)
    trainer = SimpleNamespace(model=model, num_generations=rollout.num_generations, args=SimpleNamespace())
    with pytest.raises(RunError, match="not a multiple of max_turns=4"):
        rollout([episode_prompt(0, 0)] * 6, trainer)
    with pytest.raises(RunError, match="name different episodes"):
        rollout([episode_prompt(0, 0)] * 2 + [episode_prompt(1, 0)] * 2, trainer)
    with pytest.raises(RunError, match="not rollout.num_generations"):
        rollout([episode_prompt(0, 0)] * 4, SimpleNamespace(model=model, num_generations=4))
    vllm = SimpleNamespace(args=SimpleNamespace(use_vllm=True, top_k=5, max_completion_length=8))
    with pytest.raises(ConfigError, match="use_vllm=True, top_k=5"):
        rollout.policy(vllm)


def test_the_paper_settings_are_our_trainers_defaults_in_trls_names(tmp_path):
    config = TRLRollout(ENV, group_size=8, max_turns=5).config(str(tmp_path), prompts_per_step=8, use_cpu=True)
    batches = (config.num_generations, config.per_device_train_batch_size, config.gradient_accumulation_steps)
    assert batches == (40, 5, 64)
    assert config.steps_per_generation == 64 and config.generation_batch_size == 8 * 8 * 5  # one step per generation
    settings = paper_settings()
    assert {key: getattr(config, key) for key in settings} == settings
    assert (config.learning_rate, config.beta, config.epsilon, config.epsilon_high, config.delta) == (
        1e-6, 0.001, 0.2, 0.28, 3.0)
    assert (config.scale_rewards, config.loss_type, config.top_p) == ("none", "dapo", 0.99)


# One real step. A randomly initialized model writes no action tag in a lifetime, so every episode would
# score 0, every advantage would be 0 and nothing would be learnt. This tiny model's words are whole
# actions instead (storing a note, the gold answer of episode 0, a wrong answer), so its random episodes
# sometimes answer right (about 40 % at 8 turns of 3 tokens): groups of 8 have mixed rewards.
GOLD = "Shousperos"  # the answer of episode 0 of AtomMem-Synthetic-Tiny-v0


def action_words(action_format):
    if action_format == "tags":
        return ["<add_memory>note</add_memory>", f"<final_answer>\\boxed{{{GOLD}}}</final_answer>",
                "<final_answer>\\boxed{Nowhere}</final_answer>"]
    call = lambda name, **arguments: "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"  # noqa: E731
    return [call("add_memory", text="note"), call("final_answer", answer=GOLD), call("final_answer", answer="Nowhere")]


def action_lm(action_format):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<eos>", *action_words(action_format)]
    core = Tokenizer(models.WordLevel({word: i for i, word in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<eos>", eos_token="<eos>")
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} <eos> {% endfor %}"
                               "{% if add_generation_prompt %}assistant :{% endif %}")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096, pad_token_id=1,
                         eos_token_id=1, bos_token_id=None)
    return LlamaForCausalLM(config), tokenizer


@pytest.mark.parametrize("action_format", ["tags", "tools"])
def test_one_grpo_trainer_step_learns_from_the_envs_rewards(tmp_path, monkeypatch, action_format):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    model, tokenizer = action_lm(action_format)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    rollout = TRLRollout(EnvSpec("AtomMem-Synthetic-Tiny-v0", {"action_format": action_format}),
                         group_size=8, max_turns=8, batch_size=16)
    config = rollout.config(str(tmp_path), prompts_per_step=2, max_steps=1, max_completion_length=3,
                            learning_rate=1e-2, warmup_steps=0, beta=0.0, use_cpu=True, report_to="none",
                            save_strategy="no", logging_steps=1, gradient_checkpointing=False, seed=0)
    trainer = trl.GRPOTrainer(model, reward_funcs=env_reward, args=config, processing_class=tokenizer,
                              train_dataset=rollout.dataset([0, 0]), rollout_func=rollout)
    trainer.train()

    played = rollout.trajectories
    assert len(played) == 16 and {t.index for t in played} == {0} and {t.seed for t in played} == {0, 1}
    assert all(1 <= len(t.turns) <= 8 and t.terminated != t.truncated for t in played)
    for t in played:  # the reward is the env's: EM of the answer it recorded against the episode's gold
        assert t.result["golds"] == [GOLD] and t.reward == float(t.result["answers"] == [GOLD])
    groups = [[t.reward for t in played if t.seed == seed] for seed in (0, 1)]
    assert any(min(g) < max(g) for g in groups), f"every group scored alike on this platform: {groups}"
    logged = trainer.state.log_history[0]
    assert logged["reward"] == pytest.approx(np.mean([t.reward for t in played]))
    tokens = sum(len(turn.response_ids) for t in played for turn in t.turns)
    assert logged["completions/mean_length"] == pytest.approx(tokens / (16 * 8))  # fillers count no token
    changed = [name for name, value in model.state_dict().items() if not torch.equal(before[name], value)]
    assert changed and logged["grad_norm"] > 0
    if action_format == "tools":  # a response with an action word is run as its tool calls
        assert all((turn.tool_calls is not None) == any(i > 1 for i in turn.response_ids)
                   for t in played for turn in t.turns)
