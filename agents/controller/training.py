"""Training the controller with RLlib PPO: its settings, the PPO configuration, the held-out evaluation,
the baselines and checkpoints. The library behind ``experiments/rllib_controller.py``; Ray is imported lazily.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import atommem_env
from agents.controller.curve import curve_from_run
from agents.controller.evaluation import eval_env_config, greedy_policy, macro_rates, play_config, random_policy
from agents.controller.workflows import WORKFLOWS
from agents.training.cli import arg, json_object
from agents.training.envs import EnvSpec, training_data
from agents.training.errors import RunError
from agents.training.metrics import summarize
from agents.training.progress import ProgressFactory, no_progress
from agents.training.tracking import BACKENDS, Tracker
from atommem_env.errors import ConfigError

log = logging.getLogger(__name__)


ENV_NAME = "AtomMem-Controller"  # the name RLlib knows the env creator by (tune.register_env)


@dataclass
class ControllerArgs:
    """Command-line arguments (each field is a ``--flag``)."""

    env_id: str = arg("AtomMem-Synthetic-v0", "AtomMem id the controller plays (AtomMem protocol)")
    env_kwargs: str = arg("{}", "JSON object of options for gym.make, e.g. '{\"num_documents\": 80}'")
    data_dir: str | None = arg(None, "folder of the benchmark files (real-data env ids)")
    iterations: int = arg(20, "PPO iterations (algo.train() calls)")
    batch_size: int = arg(2000, "env steps sampled per iteration (train_batch_size_per_learner)")
    minibatch_size: int = arg(256, "SGD minibatch")
    epochs: int = arg(8, "passes over each batch")
    lr: float = arg(1e-3, "Adam learning rate")
    gamma: float = arg(0.99, "discount: < 1 prefers the same answer in fewer turns (the env's reward is unchanged)")
    entropy_coeff: float = arg(0.01, "entropy bonus")
    hidden: list[int] = arg([64, 64], "hidden layer sizes of the policy and value networks")
    num_env_runners: int = arg(0, "remote sampling actors (0 samples in the driver process)")
    eval_episodes: int = arg(100, "held-out episodes for the greedy policy and the static workflows")
    eval_every: int = arg(5, "iterations between held-out evaluations (and the last iteration)")
    checkpoint_every: int = arg(10, "iterations between checkpoints")
    keep_checkpoints: int = arg(2, "newest checkpoints kept")
    seed: int = arg(0, "seeds RLlib (network init, sampling)")
    eval_seed: int = arg(0, "held-out episode i is reset with eval_seed + i (and seeds the random baseline): "
                            "the same test episodes whatever --seed")
    logger: str = arg("tensorboard", "tensorboard, wandb or none (metrics.csv is always written)")
    resume: bool = arg(False, "continue a stopped run from the newest checkpoints/iter-NNNN of --out-dir "
                              "(its metrics.csv and baselines.json kept)")
    out_dir: str = arg("", "the run's folder (required)")

    def validate(self) -> None:
        """Check every value.

        Raises:
            ConfigError: a value cannot work (the message names the flag).
        """
        if not self.out_dir:
            raise ConfigError("--out-dir is required (e.g. runs/controller/synthetic).")
        positive = ("iterations", "batch_size", "minibatch_size", "epochs", "eval_episodes", "eval_every",
                    "checkpoint_every", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}.")
        if self.minibatch_size > self.batch_size:
            raise ConfigError(f"--minibatch-size {self.minibatch_size} exceeds --batch-size {self.batch_size}.")
        if self.num_env_runners < 0 or not 0 < self.gamma <= 1 or self.lr <= 0 or not self.hidden:
            raise ConfigError("need --num-env-runners >= 0, 0 < --gamma <= 1, --lr > 0 and at least one --hidden size.")
        if self.logger not in BACKENDS:
            raise ConfigError(f"--logger {self.logger!r}: choose one of {', '.join(BACKENDS)}.")
        kwargs = json_object("--env-kwargs", self.env_kwargs, '{"num_documents": 80}')
        if self.env_id not in atommem_env.registered_ids():
            raise ConfigError(f"--env-id {self.env_id!r} is not an AtomMem id; e.g. AtomMem-Synthetic-v0.")
        if training_data(self.env_id, kwargs)["split"] not in (None, "train"):
            raise ConfigError(
                f"{self.env_id} trains on the split named in --env-kwargs (default dev), and the held-out "
                "evaluation is the dev split: training there would score the controller on its training "
                "questions. Train on the train split: --env-kwargs '{\"split\": \"train\"}'."
            )

    def env_config(self) -> dict[str, Any]:
        """The training env's config for :func:`agents.controller.env.make_controller_env`."""
        spec = EnvSpec.from_flags(self.env_id, self.env_kwargs, self.data_dir)
        return {"env_id": spec.env_id, "env_kwargs": spec.options()}


def ppo_config(args: ControllerArgs) -> Any:
    """The PPO configuration (new API stack: RLModule, Learner, EnvRunner) with the masked module."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from agents.controller.rllib_module import MaskedPPOTorchRLModule

    return (
        PPOConfig()
        .environment(ENV_NAME, env_config=args.env_config())
        .env_runners(num_env_runners=args.num_env_runners, num_envs_per_env_runner=1)
        .training(lr=args.lr, gamma=args.gamma, train_batch_size_per_learner=args.batch_size,
                  minibatch_size=args.minibatch_size, num_epochs=args.epochs, entropy_coeff=args.entropy_coeff)
        .rl_module(rl_module_spec=RLModuleSpec(module_class=MaskedPPOTorchRLModule),
                   model_config=DefaultModelConfig(fcnet_hiddens=list(args.hidden), fcnet_activation="tanh"))
        .debugging(seed=args.seed)
    )


def register_env() -> None:
    """Make :data:`ENV_NAME` known to RLlib (in every process of the Ray session)."""
    from ray import tune

    from agents.controller.env import make_controller_env

    tune.register_env(ENV_NAME, make_controller_env)


def baselines(args: ControllerArgs) -> dict[str, float]:
    """Held-out EM of every static workflow and of the random policy (the curve's reference lines)."""
    config = eval_env_config(args.env_config())
    policies = {**WORKFLOWS, "random": random_policy(args.eval_seed)}
    return {name: summarize(play_config(config, policy, args.eval_episodes, args.eval_seed))["em"]
            for name, policy in policies.items()}


def train_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The scalars of one ``algo.train()`` result worth a curve (RLlib 2.x result keys)."""
    runners, learner = result["env_runners"], result["learners"]["default_policy"]
    metrics = {
        "train/episode_return_mean": runners.get("episode_return_mean", float("nan")),
        "train/episode_len_mean": runners.get("episode_len_mean", float("nan")),
        "train/episodes": runners.get("num_episodes", 0),
        "train/env_steps": result["num_env_steps_sampled_lifetime"],
        "time/iteration_s": result["time_this_iter_s"],
    }
    for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "vf_explained_var"):
        if key in learner:
            metrics[f"train/{key}"] = learner[key]
    return {k: float(v) for k, v in metrics.items()}


def evaluate(args: ControllerArgs, module: Any) -> dict[str, float]:
    """Greedy play of the current module on the held-out episodes: EM, op and macro rates."""
    trajectories = play_config(eval_env_config(args.env_config()), greedy_policy(module), args.eval_episodes,
                               args.eval_seed)
    summary = summarize(trajectories)
    keys = ("em", "f1", "turns", "create_per_turn", "read_per_turn", "update_per_turn", "delete_per_turn",
            "invalid_per_turn", "truncated")
    return {**{f"eval/{k}": float(summary[k]) for k in keys},
            **{f"eval/{k}": v for k, v in macro_rates(trajectories).items()}}


def save(algo: Any, out: Path, iteration: int, keep: int) -> None:
    """``checkpoints/iter-NNNN`` via ``algo.save_to_path``; only the newest ``keep`` stay."""
    root = out / "checkpoints"
    algo.save_to_path(str((root / f"iter-{iteration:04d}").resolve()))  # RLlib wants absolute paths
    for old in sorted(root.glob("iter-*"))[:-keep]:
        shutil.rmtree(old)


def rows_last(rows: list[dict[str, float]], key: str) -> float:
    """The newest value of ``key`` among ``rows`` (NaN when none has it yet)."""
    return next((row[key] for row in reversed(rows) if key in row), float("nan"))


def newest_checkpoint(out: Path) -> tuple[Path, int]:
    """The newest ``checkpoints/iter-NNNN`` of a run folder and its iteration.

    Raises:
        RunError: the folder has no checkpoint to resume from.
    """
    found = sorted((out / "checkpoints").glob("iter-*"))
    if not found or not (out / "baselines.json").exists():
        raise RunError(f"--resume: {out} has no checkpoints/iter-NNNN and baselines.json to continue from (a "
                       "checkpoint is saved every --checkpoint-every iterations); start it again without --resume.")
    return found[-1], int(found[-1].name.split("-")[1])


def train(args: ControllerArgs, progress: ProgressFactory = no_progress) -> dict[str, Any]:
    """The run: baselines, PPO iterations with held-out evaluations and checkpoints, the final policy and
    the curve, all written to ``args.out_dir``; returns the last iteration's metrics and the baselines.

    With ``args.resume`` the algorithm is restored from the newest checkpoint (its module, optimizer and
    connector states; the sampling RNG is not restored, so the continued run is not bit-identical to an
    uninterrupted one) and training goes on from the next iteration, the earlier metrics kept.

    Ray must be running (``agents.training.ray.cluster.connect``): RLlib builds its actors there.
    """
    out = Path(args.out_dir)
    register_env()
    start = 0
    if args.resume:
        checkpoint, start = newest_checkpoint(out)
        reference = json.loads((out / "baselines.json").read_text(encoding="utf-8"))
    else:
        reference = baselines(args)
        out.mkdir(parents=True, exist_ok=True)
        (out / "baselines.json").write_text(json.dumps(reference, indent=2, sort_keys=True) + "\n",
                                            encoding="utf-8")
    algo = ppo_config(args).build_algo()
    if args.resume:
        algo.restore_from_path(str(checkpoint.resolve()))
    rows: list[dict[str, float]] = []
    with Tracker(out, backend=args.logger, config=asdict(args), resume=args.resume) as tracker:
        if args.resume:
            tracker.truncate_after(start)  # iterations logged after the checkpoint are trained again
        bar = progress("PPO", args.iterations, start)
        for iteration in range(start + 1, args.iterations + 1):
            started = time.perf_counter()
            metrics = train_metrics(algo.train())
            if iteration % args.eval_every == 0 or iteration == args.iterations:
                metrics.update(evaluate(args, algo.get_module()))
            metrics["time/wall_s"] = time.perf_counter() - started
            tracker.log(metrics, step=iteration)
            rows.append({"iteration": iteration, **metrics})
            bar.update(1)
            bar.set_postfix(ret=f"{metrics['train/episode_return_mean']:.3f}",
                            eval_em=f"{rows_last(rows, 'eval/em'):.3f}")
            if iteration % args.checkpoint_every == 0:
                save(algo, out, iteration, args.keep_checkpoints)
        bar.close()
    algo.save_to_path(str((out / "final").resolve()))
    algo.stop()
    curve_from_run(out)
    return {"last": rows[-1] if rows else {}, "baselines": reference}
