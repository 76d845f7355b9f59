"""Progress displays are the scripts' choice: library loops take a :data:`ProgressFactory` and draw
nothing without one (``experiments/*.py`` pass :func:`agents.training.cli.progress_bars`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Progress(Protocol):
    """What a loop reports to: a ``tqdm`` bar has this shape."""

    def update(self, n: int = 1) -> Any:
        """Count ``n`` more units done."""

    def set_postfix(self, **values: Any) -> Any:
        """Show the latest values (e.g. the loss) next to the count."""

    def close(self) -> Any:
        """The loop is over."""


# (what is counted, how many in all, how many were already done before this run) -> a display
ProgressFactory = Callable[[str, int, int], Progress]


class NoProgress:
    """Shows nothing (the default of every library loop)."""

    def update(self, n: int = 1) -> None:
        """Do nothing."""

    def set_postfix(self, **values: Any) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


def no_progress(description: str, total: int, done: int) -> NoProgress:
    """A :data:`ProgressFactory` that shows nothing."""
    return NoProgress()
