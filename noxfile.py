"""Developer sessions. Run them from the project's environment (`scripts/setup` first):

    .venv/bin/nox -s tests          # the test suite (PostgreSQL tests need scripts/start-postgres)
    .venv/bin/nox -s lint           # ruff
    .venv/bin/nox -s benchmarks     # noise floor, profiling throughput, additivity gap

Sessions reuse the current environment (venv_backend="none") rather than building new
ones: a fresh environment would have to reinstall torch, and the CPU wheel is pinned by
scripts/setup. Benchmarks time things: run them alone, never beside tests.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    session.run(
        "ruff", "check", "latbench", "predictors", "search", "reports", "tests", "benchmarks", "noxfile.py"
    )


@nox.session(venv_backend="none")
def benchmarks(session: nox.Session) -> None:
    """Noise floor, throughput and additivity gap on onnxruntime-cpu (~10 minutes)."""
    session.run("python", "benchmarks/foundation.py", *session.posargs)
