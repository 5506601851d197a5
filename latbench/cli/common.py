"""What the command modules share: the console, progress bars, target resolution and
checks of numeric options. Printing and parsing only; the work is the library's."""

from __future__ import annotations

import argparse
from typing import Any

from latbench.errors import ConfigError


def console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    # soft_wrap: long lines are not broken at 80 columns when output is not a terminal
    return Console(soft_wrap=True)


def positive(name: str, value: int) -> int:
    if value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value}")
    return value


def resolve_target(text: str):  # type: ignore[no-untyped-def]
    """``(backend, target)`` for a ``--target`` value, with the backend's defaults filled in."""
    from latbench.backends.registry import default_registry
    from latbench.target import Target

    return default_registry().resolve(Target.parse(text))


def machine_fingerprint(backend):  # type: ignore[no-untyped-def]
    from latbench.fingerprint import collect

    return collect(backend.fingerprint_extras())


def db_option(
    p: argparse.ArgumentParser, help_text: str = "SQLite path or SQLAlchemy URL", **kwargs: Any
) -> None:
    """``--db``, defaulting to ``$LATBENCH_DB`` or ``latbench.db``."""
    from latbench.db import default_db

    kwargs.setdefault("default", default_db())
    p.add_argument("--db", help=f"{help_text} [$LATBENCH_DB or latbench.db]", **kwargs)


def progress_bar(label: str, *, stderr: bool = True, console=None, **options: Any):  # type: ignore[no-untyped-def]
    """A rich progress bar: count, elapsed, ETA and a description. On stderr by default, so
    that ``--json`` output on stdout stays machine-readable."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        console=console or Console(stderr=stderr, soft_wrap=True),
        **options,
    )


def loss_bar(label: str):  # type: ignore[no-untyped-def]
    """``(bar, on_step)``: a training progress bar and the trainer callback that moves it."""
    bar = progress_bar(label)
    task = bar.add_task("", total=None)

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        bar.update(task, completed=step, total=total, description=f"loss {losses['loss']:.4f}")

    return bar, on_step
