"""The README's commands stay true: every `latbench` command in its code blocks parses
with the real command line (a renamed or removed option fails here), and the two
commands at its top are the ones scripts and CI run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from latbench.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return re.findall(r"^```([a-z]*)\n(.*?)^```", text, flags=re.S | re.M)


def latbench_commands(text: str) -> list[list[str]]:
    """Every `latbench ...` command of the code blocks, continuation lines joined: the
    lines of ```bash blocks, and the `$ ` lines of output blocks (the rest is output)."""
    commands = []
    for language, block in code_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if language != "bash" and not line.startswith("$ "):
                continue
            line = line.removeprefix("$ ").split("  #", 1)[0].strip()
            for prefix in ("scripts/setup && .venv/bin/latbench ", ".venv/bin/latbench ", "latbench "):
                if line.startswith(prefix):
                    commands.append(shlex.split(line[len(prefix) :]))
                    break
    return commands


COMMANDS = latbench_commands(README.read_text(encoding="utf-8"))


def test_the_readme_shows_the_commands_of_every_user_job() -> None:
    shown = {c[0] for c in COMMANDS}
    assert shown >= {"demo", "devices", "profile", "fit", "predict", "evaluate", "distill", "demo-task",
                     "search", "report"}  # fmt: skip


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_every_readme_command_parses(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)  # argparse exits (a failure) on an unknown option
    assert args.command == argv[0]


def test_the_two_commands_are_what_scripts_and_ci_run() -> None:
    top = code_blocks(README.read_text(encoding="utf-8"))[0][1]
    assert "scripts/setup && .venv/bin/latbench demo" in top and "scripts/test" in top
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/test" in ci
