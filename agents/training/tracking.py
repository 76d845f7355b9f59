"""Metrics of a training run: a raw CSV always, plus TensorBoard (default), Weights & Biases or nothing.

    with Tracker("runs/sft/x", config=asdict(args)) as tracker:
        tracker.log({"train/loss": 1.2, "train/lr": 1e-5}, step=1)

Keys are namespaced (``train/loss``, ``rollout/create_per_turn``, ``eval/em``). ``run_dir/metrics.csv``
has one row per logged step and the columns ``step`` plus the sorted metric keys; a key that appears
later rewrites the file with the union of columns, so the CSV is always a plain rectangular table.
``run_dir/config.json`` holds the run's configuration, with any secret redacted.

When a run resumes from a checkpoint at step S, steps after S were logged by the crashed run but will
be trained again: ``Tracker(..., resume=True)`` keeps the old rows and :meth:`Tracker.truncate_after`
drops those after S (TensorBoard hides its events after S too), so no step appears twice.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from atommem_env.credentials import redact
from atommem_env.errors import ConfigError, DependencyError

__all__ = ["BACKENDS", "METRICS_CSV", "Tracker"]

BACKENDS = ("tensorboard", "wandb", "none")
METRICS_CSV = "metrics.csv"
CONFIG_JSON = "config.json"
TENSORBOARD_DIR = "tensorboard"
WANDB_ID = "wandb_run_id.txt"


class Tracker:
    """Log namespaced scalar metrics per step to ``metrics.csv`` and one optional backend.

    Args:
        run_dir: the run's folder (created if missing).
        backend: ``"tensorboard"`` (event files in ``run_dir/tensorboard``), ``"wandb"`` or ``"none"``.
        config: the run's configuration, written to ``run_dir/config.json`` and given to wandb, each with
            its secrets redacted (:func:`atommem_env.credentials.redact`).
        project: the wandb project.
        resume: keep the rows of an earlier ``metrics.csv`` (call :meth:`truncate_after` with the
            resumed step); without it an earlier ``metrics.csv`` is replaced.

    Raises:
        ConfigError: unknown backend.
        DependencyError: the backend's package is not installed.
    """

    def __init__(self, run_dir: str | Path, *, backend: str = "tensorboard", config: dict | None = None,
                 project: str = "atommem", resume: bool = False) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"logger backend {backend!r} is unknown; choose one of {', '.join(BACKENDS)}.")
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if config is not None:
            config = redact(config)  # an API key among the options is never written nor sent to wandb
            text = json.dumps(config, indent=2, sort_keys=True, default=str)
            (self.run_dir / CONFIG_JSON).write_text(text + "\n", encoding="utf-8")
        self.csv = MetricsCsv(self.run_dir / METRICS_CSV, resume=resume)
        self.backend = _make_backend(backend, self.run_dir, config, project, resume)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Record ``metrics`` at ``step`` (several calls with the same step fill one row)."""
        values = {key: _scalar(key, value) for key, value in metrics.items()}
        self.csv.add(int(step), values)
        self.backend.log(values, int(step))

    def truncate_after(self, step: int) -> None:
        """Forget what was logged after ``step`` (call it with the step a run resumes from)."""
        self.csv.truncate_after(int(step))
        self.backend.truncate_after(int(step))

    def close(self) -> None:
        """Flush and close the backend (the CSV is written as it goes)."""
        self.backend.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scalar(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"metric {key!r} = {value!r} is not a number; log scalars only.") from None


# ---------------------------------------------------------------------------------------------------
# The CSV


class MetricsCsv:
    """``step`` + sorted metric columns; appends rows, rewrites the file when the columns grow."""

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = path
        self.rows: list[dict[str, str]] = self._read() if resume else []
        self.columns: set[str] = {key for row in self.rows for key in row} - {"step"}
        if not resume:
            path.unlink(missing_ok=True)

    def _read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with open(self.path, newline="", encoding="utf-8") as handle:
            # Values stay the strings they were written as, so rewriting changes no digit.
            return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]

    def add(self, step: int, metrics: Mapping[str, float]) -> None:
        values = {key: repr(value) for key, value in metrics.items()}
        merge = bool(self.rows) and int(self.rows[-1]["step"]) == step
        if merge:
            self.rows[-1].update(values)
        else:
            self.rows.append({"step": str(step), **values})
        if merge or not values.keys() <= self.columns:
            self.columns |= values.keys()
            self._rewrite()
        else:
            self._append(self.rows[-1])

    def truncate_after(self, step: int) -> None:
        self.rows = [row for row in self.rows if int(row["step"]) <= step]
        self._rewrite()

    def _fieldnames(self) -> list[str]:
        return ["step", *sorted(self.columns)]

    def _append(self, row: dict[str, str]) -> None:
        new_file = not self.path.exists()
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._fieldnames())
            if new_file:
                writer.writeheader()
            writer.writerow(row)

    def _rewrite(self) -> None:
        staging = self.path.with_name(self.path.name + ".tmp")
        with open(staging, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._fieldnames())
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(staging, self.path)  # a crash mid-rewrite keeps the old file whole


# ---------------------------------------------------------------------------------------------------
# Backends


class _Backend(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def truncate_after(self, step: int) -> None: ...

    def close(self) -> None: ...


class _NoBackend:
    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def truncate_after(self, step: int) -> None:
        pass

    def close(self) -> None:
        pass


class _TensorBoard:
    """A ``SummaryWriter`` opened on the first log, so that a resume can first set its purge step.

    A fresh run purges from step 0: events an earlier attempt left in the folder (a run that stopped
    before its first checkpoint, then started again) are hidden, as its ``metrics.csv`` is replaced.
    """

    def __init__(self, log_dir: Path, *, resume: bool) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise DependencyError(
                "TensorBoard logging needs the tensorboard package: pip install 'atommem[train]' "
                "(or pip install tensorboard), or choose another logger (--logger none writes only metrics.csv)."
            ) from error
        self._make = lambda purge_step: SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        self._purge_step: int | None = None if resume else 0
        self._writer: Any = None

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._writer is None:
            self._writer = self._make(self._purge_step)
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)

    def truncate_after(self, step: int) -> None:
        # TensorBoard hides earlier events at or after purge_step when the new writer starts.
        self._purge_step = step + 1
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _Wandb:
    """A wandb run whose id is kept in the run folder, so a resumed run continues the same wandb run.

    wandb cannot forget logged steps: after a resume it ignores steps it has already seen.
    """

    def __init__(self, run_dir: Path, config: dict | None, project: str, resume: bool) -> None:
        try:
            import wandb
        except ImportError as error:
            raise DependencyError(
                "Weights & Biases logging needs the wandb package: pip install wandb, or choose another "
                "logger (--logger tensorboard or --logger none)."
            ) from error
        id_file = run_dir / WANDB_ID
        run_id = id_file.read_text().strip() if resume and id_file.exists() else wandb.util.generate_id()
        id_file.write_text(run_id + "\n")
        self._run = wandb.init(
            project=project, id=run_id, name=run_dir.name, dir=str(run_dir), config=config,
            resume="allow" if resume else None,
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._run.log(metrics, step=step)

    def truncate_after(self, step: int) -> None:
        pass  # see the class docstring

    def close(self) -> None:
        self._run.finish()


def _make_backend(name: str, run_dir: Path, config: dict | None, project: str, resume: bool) -> _Backend:
    if name == "tensorboard":
        return _TensorBoard(run_dir / TENSORBOARD_DIR, resume=resume)
    if name == "wandb":
        return _Wandb(run_dir, config, project, resume)
    return _NoBackend()
