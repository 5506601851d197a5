"""Developer sessions. Run them from the project's environment (`scripts/setup` first):

    .venv/bin/nox -s tests          # the test suite (PostgreSQL tests need scripts/start-postgres)
    .venv/bin/nox -s lint           # ruff
    .venv/bin/nox -s benchmarks     # noise floor, profiling throughput, additivity gap
    .venv/bin/nox -s predictor_benchmarks   # published models, learning curve, transfer, speed
    .venv/bin/nox -s distill_benchmarks     # students at measured speed-ups, ETD, proxy ranking
    .venv/bin/nox -s search_benchmarks      # samplers' hypervolume against trials
    .venv/bin/nox -s demo                   # `latbench demo`, then its report in headless Chromium

Sessions reuse the interpreter nox runs under (venv_backend="none", tools called as
``python -m``) rather than building new environments: a fresh one would have to reinstall
torch, whose CPU wheel scripts/setup pins. Benchmarks time things: run them alone, never
beside tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]

PYTHON = sys.executable  # .venv's python when run as .venv/bin/nox, whatever PATH says


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    session.run(PYTHON, "-m", "pytest", *session.posargs, external=True)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    paths = ["latbench", "tests", "benchmarks", "noxfile.py"]
    session.run(PYTHON, "-m", "ruff", "check", *paths, external=True)
    session.run(PYTHON, "-m", "ruff", "format", "--check", *paths, external=True)
    session.run(str(Path(PYTHON).parent / "lint-imports"), "--no-cache", external=True)


@nox.session(venv_backend="none")
def benchmarks(session: nox.Session) -> None:
    """Noise floor, throughput and additivity gap on onnxruntime-cpu (~5 minutes)."""
    session.run(PYTHON, "benchmarks/foundation.py", *session.posargs, external=True)


@nox.session(venv_backend="none")
def target_benchmarks(session: nox.Session) -> None:
    """A target's figures: sample CoV and IQR/median, noise floor, additivity gap and
    predictor accuracy on the quick plan profiled twice. Default: the GPU targets (on a
    lent machine: scripts/device-check); here e.g. `-- --target torch-cpu --target
    xla:platform=cpu` (~5 minutes; see benchmarks/target_bench.py)."""
    session.run(PYTHON, "benchmarks/target_bench.py", *session.posargs, external=True)


@nox.session(venv_backend="none")
def predictor_benchmarks(session: nox.Session) -> None:
    """Published BERT-family architectures, learning curve, few-shot transfer and
    prediction speed (~30 minutes after the standard plan is profiled into
    .latbench-bench/standard.db; see benchmarks/predictor_bench.py)."""
    session.run(PYTHON, "benchmarks/predictor_bench.py", *session.posargs, external=True)


@nox.session(venv_backend="none")
def distill_benchmarks(session: nox.Session) -> None:
    """The demo teacher's students at 2x/3x/5x measured speed-ups, ETD vs random
    initialisation, and the proxy-vs-full ranking (see benchmarks/distill_bench.py)."""
    session.run(PYTHON, "benchmarks/distill_bench.py", *session.posargs, external=True)


@nox.session(venv_backend="none")
def search_benchmarks(session: nox.Session) -> None:
    """Hypervolume against trials for every sampler on the accuracy surrogate (3 seeds),
    then GP against random on real proxy distillation of the demo teacher's students, and
    the Pareto set's predicted vs measured latency (~1 hour; see benchmarks/search_bench.py)."""
    session.run(PYTHON, "benchmarks/search_bench.py", *session.posargs, external=True)


@nox.session(venv_backend="none")
def demo(session: nox.Session) -> None:
    """The README's first command (`latbench demo`, ~7 minutes on 2 cores), then its report
    opened in headless Chromium (scripts/install-chromium), failing on console errors or
    missing images; the screenshot is latbench-demo/report-screenshot.png."""
    out = session.posargs[0] if session.posargs else "latbench-demo"
    session.run(PYTHON, "-m", "latbench.cli", "demo", "--out", out, external=True)
    session.run(
        PYTHON, "-m", "latbench.reports.browser", f"{out}/report/report.html",
        "--screenshot", f"{out}/report-screenshot.png", external=True,
    )  # fmt: skip
