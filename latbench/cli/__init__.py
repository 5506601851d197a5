"""The ``latbench`` command line: the top layer. Each module registers its subcommands
(``register``) and runs them by calling the library and printing; no module here holds
logic or defaults the library lacks (defaults come from the settings dataclasses).

``measure``: devices, measure, specsheets · ``profile``: profile, export ·
``predictors``: fit, evaluate, predict · ``distill``: distill, demo-task ·
``search``: search · ``report``: report · ``demo``: demo.
"""

from __future__ import annotations

from latbench.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
