"""The ``latbench`` command: the parser (each command module registers its own
subcommands) and ``main``, which turns user mistakes (``LatbenchError``) into one-line
errors and exit code 2."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from latbench import __version__
from latbench.cli import demo, distill, measure, predictors, profile, report, search, stability, supernet
from latbench.errors import LatbenchError

#: The commands in the order ``latbench --help`` lists them.
ORDER = ("devices", "profile", "measure", "fit", "specsheets", "evaluate", "predict", "export", "distill",
         "supernet", "search", "report", "demo", "demo-task", "stability")  # fmt: skip
MODULES = (measure, profile, predictors, distill, supernet, search, report, demo, stability)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latbench",
        description="Hardware-aware latency modeling and benchmarking for transformer encoders.",
        epilog="Run `latbench COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"latbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    registers = {name: register for module in MODULES for name, register in module.PARSERS.items()}
    assert sorted(registers) == sorted(ORDER), "every command is listed in ORDER once"
    for name in ORDER:
        registers[name](sub)
    return parser


def run(argv: Sequence[str]) -> int:
    """Parse ``argv`` and run its command in this process (errors propagate)."""
    args = build_parser().parse_args(argv)
    args.argv = list(argv)  # recorded in results' provenance
    return int(args.run(args))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # kill/SIGTERM ends a profile as Ctrl-C does: committed chunks stay, claims are released.
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return run(argv)
    except LatbenchError as exc:
        print(f"latbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `latbench ... | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # an unreadable input, an unwritable output, a full disk
        where = f": {exc.filename}" if exc.filename else ""
        print(f"latbench: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except MemoryError:
        print(
            "latbench: error: out of memory; use a smaller --batch/--seq, architecture or plan",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(
            "latbench: interrupted; everything measured so far is saved, rerun to continue", file=sys.stderr
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
