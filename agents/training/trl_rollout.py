"""TRL's ``GRPOTrainer`` on atommem envs: a ``rollout_func`` that plays whole episodes with the model TRL trains.

    rollout = TRLRollout(EnvSpec("AtomMem-Synthetic-Tiny-v0"), group_size=4, max_turns=8)
    config = rollout.config("runs/trl", prompts_per_step=2, max_steps=10)   # a trl.GRPOConfig
    trainer = GRPOTrainer(model, reward_funcs=env_reward, args=config, processing_class=tokenizer,
                          train_dataset=rollout.dataset(range(64)), rollout_func=rollout)
    trainer.train()

Why ``rollout_func`` and not TRL's environment mode (``environment_factory``). TRL's environments are
conversations: ``reset()`` adds to the first user message, the model calls the environment's methods as
tools, and each result is appended to the chat the model goes on writing, so the context grows with every
turn. An atommem turn is a *fresh* prompt: the memory, the current chunk and the question rendered anew,
nothing of earlier turns but what the agent kept in memory (SPEC §5). That bounded context is the point of
the protocol, and an appended chat cannot express it. ``rollout_func`` can: it returns prompt ids,
completion ids and sampling logprobs per row, and TRL trains on each row as ``prompt -> completion``.

How an episode becomes TRL rows. TRL ties each returned row to one row of its batch (rewards, groups and
advantages are computed row by row), and an episode has a variable number of turns. So every episode gets
exactly ``max_turns`` rows (the env's turn budget is set to ``max_turns``, so none has more): one per turn,
``prompt_ids`` the turn's own prompt and ``completion_ids`` the model's response to it (the paper's
step-wise samples, SPEC §8, as :func:`agents.training.grpo.turn_samples` makes them), then filler rows of
one token whose ``env_mask`` is 0, so they add nothing to the loss or to its token count. Every row of an
episode carries the episode's reward, and TRL's ``num_generations`` is ``group_size * max_turns``: the
rows of one group are the rollouts of one (episode index, seed), and since each episode has the same
number of rows, the group mean TRL subtracts is the mean episode reward of the group, the paper's
advantage (with ``scale_rewards="none"``). The cost is the filler rows' share of each padded forward pass.

The episodes are played by :func:`agents.training.rollout.rollout` with a
:class:`~agents.hf_policy.TransformersPolicy` around TRL's model (shared, not copied), sampling at TRL's
``temperature`` and ``top_p`` with ``max_completion_length`` new tokens a turn, so the env, its options
and both action formats (``action_format="tools"`` too) are exactly those of our own trainer. TRL's dataset
holds one row per group: its ``prompt`` names the episode (:func:`episode_prompt`), and TRL repeats each row
``num_generations`` times. The reward function is :func:`env_reward`: the env's episode reward, passed
along with the rows.

:meth:`TRLRollout.config` makes the ``GRPOConfig``: the batch sizes that keep episodes whole (one episode
per micro-batch, one optimizer step per generation, so the rollouts are on-policy) and, as defaults that
any TRL setting overrides, the paper's recipe as our own trainer's defaults state it
(:class:`~agents.training.grpo_config.GRPOArgs`): lr 1e-6 after 20 warm-up steps, AdamW weight decay 0.01,
k3 KL 0.001 (TRL's ``beta``), clipping 0.2 / 0.28, dual clipping at 3 (TRL's two-sided ``delta``: with a
negative advantage a token's loss is capped at ``-A * delta``, the same bound), no std scaling of
advantages, token-mean loss (``loss_type="dapo"``), temperature 1.0, top-p 0.99, 4,096 new tokens a turn,
bfloat16 on CUDA and float32 on a CPU.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from agents.training.envs import EnvSpec
from agents.training.errors import RunError
from agents.training.grpo_config import GRPOArgs
from agents.training.rollout import Trajectory, rollout
from atommem_env.errors import ConfigError

_PROMPT = re.compile(r"atommem episode (?P<index>\d+) seed (?P<seed>\d+)")
# TRL's sampling settings that TransformersPolicy cannot honour, with the value that means "off".
_UNSUPPORTED = {"use_vllm": False, "top_k": 0, "min_p": None, "repetition_penalty": 1.0,
                "use_transformers_continuous_batching": False}


def episode_prompt(index: int, seed: int) -> str:
    """The dataset ``prompt`` that names one group: episode ``index`` reset with ``seed``."""
    return f"atommem episode {int(index)} seed {int(seed)}"


def parse_episode_prompt(prompt: Any) -> tuple[int, int]:
    """``(index, seed)`` of a prompt made by :func:`episode_prompt`.

    Raises:
        RunError: the prompt was not made by :func:`episode_prompt` (the dataset is not one of
            :meth:`TRLRollout.dataset`).
    """
    match = _PROMPT.fullmatch(prompt) if isinstance(prompt, str) else None
    if match is None:
        raise RunError(f"The prompt {prompt!r} names no atommem episode; train on TRLRollout.dataset(...), whose "
                       "prompts read 'atommem episode INDEX seed SEED'.")
    return int(match["index"]), int(match["seed"])


def env_reward(completions: Sequence[Any], episode_reward: Sequence[float], **_: Any) -> list[float]:
    """TRL reward function: each row's episode reward, as the env returned it (passed on by :class:`TRLRollout`)."""
    if len(episode_reward) != len(completions):
        raise RunError(f"env_reward got {len(episode_reward)} episode rewards for {len(completions)} completions; "
                       "use it with rollout_func=TRLRollout(...).")
    return [float(reward) for reward in episode_reward]


def paper_settings() -> dict[str, Any]:
    """The paper's GRPO recipe (our trainer's defaults, SPEC §8) as ``GRPOConfig`` keyword arguments."""
    import torch

    from agents.training.learner_config import LearnerConfig

    ours, learner = GRPOArgs(), LearnerConfig()
    return {
        "learning_rate": ours.lr, "lr_scheduler_type": "constant_with_warmup", "warmup_steps": ours.warmup_steps,
        "weight_decay": learner.weight_decay, "max_grad_norm": learner.max_grad_norm,
        "adam_beta1": learner.betas[0], "adam_beta2": learner.betas[1],
        "beta": ours.kl_coef, "epsilon": ours.clip_low, "epsilon_high": ours.clip_high, "delta": ours.dual_clip or None,
        "scale_rewards": "group" if ours.scale_by_std else "none", "loss_type": "dapo", "num_iterations": 1,
        "temperature": ours.temperature, "top_p": ours.top_p, "max_completion_length": ours.max_new_tokens,
        # Our runs compute in bfloat16 on CUDA and in float32 on a CPU (TRL's default would be bfloat16 there too).
        "bf16": ours.precision == "bfloat16" and torch.cuda.is_available(),
    }


class TRLRollout:
    """The ``rollout_func`` of TRL's ``GRPOTrainer`` for one env (see the module docstring).

    Args:
        env: the env to play; its ``max_turns`` option is set to ``max_turns``.
        group_size: rollouts of each episode (our GRPO's group size).
        max_turns: turn budget of each episode, and so TRL rows per episode.
        batch_size: episodes stepped together (one batched generation per step).
        max_context: prompt + response tokens the policy may see (``None``: the model's limit).

    Attributes:
        trajectories: the episodes of the last call, in the order of their rows.

    Raises:
        ConfigError: ``group_size`` or ``max_turns`` is below its minimum, or the env's options set
            another ``max_turns``.
    """

    def __init__(self, env: EnvSpec, *, group_size: int, max_turns: int, batch_size: int = 8,
                 max_context: int | None = None) -> None:
        if group_size < 2 or max_turns < 1 or batch_size < 1:
            raise ConfigError(f"TRLRollout group_size={group_size}, max_turns={max_turns}, batch_size={batch_size}: "
                              "need group_size >= 2 (a group of one has no advantage), max_turns and batch_size >= 1.")
        given = env.kwargs.get("max_turns", max_turns)
        if given != max_turns:
            raise ConfigError(f"The env's max_turns={given} differs from TRLRollout's max_turns={max_turns}; "
                              "set it once, on TRLRollout (it is the number of TRL rows per episode).")
        self.env = EnvSpec(env.env_id, {**env.kwargs, "max_turns": max_turns}, env.data_dir)
        self.group_size, self.max_turns = group_size, max_turns
        self.batch_size, self.max_context = batch_size, max_context
        self.trajectories: list[Trajectory] = []
        self._policy: Any = None

    @property
    def num_generations(self) -> int:
        """TRL's ``num_generations``: the rows of one group, ``group_size * max_turns``."""
        return self.group_size * self.max_turns

    def config(self, output_dir: str, *, prompts_per_step: int, **settings: Any) -> Any:
        """TRL's ``GRPOConfig`` for this rollout: ``prompts_per_step`` groups a step (per process), one
        episode per micro-batch, one optimizer step per generation, and the paper's recipe
        (:func:`paper_settings`) under ``settings``.

        Raises:
            ConfigError: ``prompts_per_step`` is below 1, or ``settings`` sets a batch size this layout fixes.
        """
        from trl import GRPOConfig

        fixed = {"num_generations": self.num_generations, "per_device_train_batch_size": self.max_turns,
                 "gradient_accumulation_steps": self.group_size * prompts_per_step}
        clashing = sorted(set(settings) & {*fixed, "generation_batch_size", "steps_per_generation"})
        if prompts_per_step < 1 or clashing:
            raise ConfigError(f"TRLRollout.config(prompts_per_step={prompts_per_step}, {clashing} set): need "
                              "prompts_per_step >= 1 and none of these batch settings (they keep episodes whole).")
        return GRPOConfig(output_dir=output_dir, **{**paper_settings(), **settings, **fixed})

    def dataset(self, indices: Iterable[int], seed: int = 0) -> Any:
        """A TRL training dataset of one row per group: episode ``indices[i]`` reset with seed ``seed + i``."""
        from datasets import Dataset

        prompts = [episode_prompt(index, seed + i) for i, index in enumerate(indices)]
        if not prompts:
            raise ConfigError("TRLRollout.dataset needs at least one episode index.")
        return Dataset.from_dict({"prompt": prompts})

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list[Any]]:
        """Play one episode per ``max_turns`` rows of ``prompts``; their rows as TRL's ``rollout_func`` returns them.

        Raises:
            RunError: the rows do not come in whole episodes (check ``num_generations`` and the batch sizes),
                or a prompt names no episode.
            ConfigError: TRL is set to sample in a way the policy cannot (vLLM, ``top_k``, ...).
        """
        generations = getattr(trainer, "num_generations", None)
        if trainer.model.training and generations != self.num_generations:
            raise RunError(f"GRPOTrainer's num_generations is {generations}, not rollout.num_generations "
                           f"({self.num_generations}); build its config with rollout.config(...).")
        if len(prompts) % self.max_turns:
            raise RunError(
                f"TRL passed {len(prompts)} rows, not a multiple of max_turns={self.max_turns}: set num_generations "
                f"to rollout.num_generations ({self.num_generations}) and batch sizes that are multiples of it."
            )
        named = [parse_episode_prompt(prompt) for prompt in prompts]
        pairs = named[:: self.max_turns]  # (index, seed) of each episode: its rows must all name it
        if any(named[i : i + self.max_turns] != [pair] * self.max_turns
               for pair, i in zip(pairs, range(0, len(named), self.max_turns), strict=True)):
            raise RunError("The rows of one episode name different episodes; set num_generations to "
                           f"rollout.num_generations ({self.num_generations}).")
        policy = self.policy(trainer)
        model = policy.model
        training = model.training
        model.eval()
        try:
            self.trajectories = rollout(self.env.factory(), policy, [seed for _, seed in pairs],
                                        env_id=self.env.env_id, indices=[index for index, _ in pairs],
                                        batch_size=self.batch_size)
        finally:
            model.train(training)
        return self.rows(self.trajectories, pad_token_id=policy.tokenizer.pad_token_id,
                         eos_token_id=policy.tokenizer.eos_token_id)

    def rows(self, trajectories: Sequence[Trajectory], *, pad_token_id: int, eos_token_id: int) -> dict[str, list[Any]]:
        """TRL rows of ``trajectories``: ``max_turns`` each, a turn per row, then fillers (``env_mask`` 0)."""
        out: dict[str, list[Any]] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": [],
                                     "episode_reward": [], "episode_id": []}
        for trajectory in trajectories:
            if len(trajectory.turns) > self.max_turns:  # the env's budget is max_turns: a bug if it happens
                raise RunError(f"Episode {trajectory.episode_id!r} took {len(trajectory.turns)} turns, more than "
                               f"max_turns={self.max_turns}.")
            for turn in trajectory.turns:
                if turn.prompt_ids is None or turn.response_ids is None or turn.logprobs is None:
                    raise RunError("A turn has no token ids or logprobs; TRLRollout needs TransformersPolicy.")
                out["prompt_ids"].append(list(turn.prompt_ids))
                out["completion_ids"].append(list(turn.response_ids))
                out["logprobs"].append(list(turn.logprobs))
                out["env_mask"].append([1] * len(turn.response_ids))
            fillers = self.max_turns - len(trajectory.turns)
            out["prompt_ids"] += [[pad_token_id] for _ in range(fillers)]
            out["completion_ids"] += [[eos_token_id] for _ in range(fillers)]
            out["logprobs"] += [[0.0] for _ in range(fillers)]
            out["env_mask"] += [[0] for _ in range(fillers)]
            out["episode_reward"] += [trajectory.reward] * self.max_turns
            out["episode_id"] += [trajectory.episode_id] * self.max_turns
        return out

    def policy(self, trainer: Any) -> Any:
        """The sampling policy around ``trainer``'s model, built on first use with TRL's sampling settings.

        Raises:
            ConfigError: a TRL sampling setting the policy cannot honour is on.
        """
        from agents.hf_policy import TransformersPolicy

        args = trainer.args
        wrong = [f"{name}={getattr(args, name)!r}" for name, off in _UNSUPPORTED.items()
                 if getattr(args, name, off) != off]
        if wrong:
            raise ConfigError(f"TRLRollout samples with the trained model in this process and cannot honour "
                              f"{', '.join(wrong)}; leave them at TRL's defaults.")
        if not args.max_completion_length:
            raise ConfigError("TRLRollout needs max_completion_length (new tokens a turn) in TRL's config.")
        model = trainer.accelerator.unwrap_model(trainer.model)
        if self._policy is None or self._policy.model is not model:
            tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
            self._policy = TransformersPolicy.from_model(
                model, tokenizer, name="trl", temperature=args.temperature, top_p=args.top_p,
                max_new_tokens=args.max_completion_length, batch_size=self.batch_size,
                max_context=self.max_context, seed=args.seed, cache_size=0, bf16=bool(args.bf16),
            )
        return self._policy
