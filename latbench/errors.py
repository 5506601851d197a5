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
