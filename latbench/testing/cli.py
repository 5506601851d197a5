"""Assertions on latbench's command line shared by the test suites."""

from __future__ import annotations

import subprocess


def assert_user_error(result: subprocess.CompletedProcess[str] | tuple[int, str], *needles: str) -> None:
    """``result`` (a finished ``latbench`` process, or ``(exit code, stderr)`` of ``main``)
    is a user error: exit code 2 and one ``latbench: error:`` line holding every needle,
    no traceback."""
    code, err = (result.returncode, result.stderr) if not isinstance(result, tuple) else result
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latbench: error: "), err
    for needle in needles:
        assert needle in lines[0]
