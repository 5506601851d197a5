"""User-facing errors.

A ``LatbenchError`` is a mistake the user can fix (bad input, an unknown target, an
unreachable database). Its message is one line that says what is wrong and how to fix it;
the CLI prints it and exits non-zero without a traceback. Anything else is a bug.
"""

from __future__ import annotations


class LatbenchError(Exception):
    """A problem with the user's input or environment, with a one-line fix-it message."""

    exit_code = 2


class InvalidArchError(LatbenchError, ValueError):
    """An architecture that cannot exist (non-positive sizes, hidden not divisible by heads)."""


class ConfigError(LatbenchError, ValueError):
    """A malformed configuration file or value."""


class TargetUnavailableError(LatbenchError):
    """A target that is unknown, or known but not runnable on this machine."""


class DatabaseError(LatbenchError):
    """A measurement database that cannot be reached, opened or trusted."""


class MeasurementError(LatbenchError):
    """A spec that could not be built or run on its target (out of memory, a runtime error)."""

    exit_code = 1


def first_line(exc: BaseException) -> str:
    """The first non-empty line of ``exc``'s message (its type's name when it has none):
    the part of a library's multi-line error that fits a one-line reason."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
