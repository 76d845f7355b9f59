"""One exception hierarchy for the suite.

Messages say what was wrong, why, and how to fix it. Nothing in the episode loop raises on a bad
*action*: those become feedback (see :mod:`atommem_env.actions`). These exceptions are for bad
*configuration* and bad *data*, which a user must fix before an episode can run.
"""

from __future__ import annotations


class AtomMemError(Exception):
    """Base class of every error raised by atommem."""


class ConfigError(AtomMemError, ValueError):
    """A constructor argument or option is invalid (names the value, the reason and the fix)."""


class DataError(AtomMemError):
    """Benchmark data is missing, unreadable or malformed (names the file, the record and the fix)."""


class MemoryOpError(AtomMemError):
    """A memory operation cannot be applied (unknown id, empty text, store full, entry too long).

    Attributes:
        code: a short machine-readable reason, reused as the error code of an action in ``info``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class RenderError(AtomMemError, ValueError):
    """A structured op cannot be rendered into action text that parses back to the same op."""


class DependencyError(AtomMemError, ImportError):
    """An optional dependency is missing (names the pip extra that provides it)."""
