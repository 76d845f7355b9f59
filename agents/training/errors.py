"""Errors of training runs. Library code raises them (or ``ConfigError`` / ``DataError`` /
``DependencyError`` from :mod:`atommem_env.errors`); only the scripts turn them into an exit status and
a message (:func:`agents.training.cli.exit_on_errors`).
"""

from __future__ import annotations

from atommem_env.errors import AtomMemError


class RunError(AtomMemError):
    """A run cannot start or go on: its folder, a checkpoint, the cluster or an actor (the message says
    what happened and what to do)."""


class ClusterError(RunError):
    """The Ray cluster cannot be joined or cannot place the run's actors."""


class RunStopped(RunError):
    """A fault stopped a run under way (an actor died, an update went out of step).

    :func:`agents.training.runs.train` adds to the message how to go on: ``--resume`` when a checkpoint
    exists, else the same command again.
    """
