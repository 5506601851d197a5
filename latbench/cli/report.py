"""``latbench report``: search results and predictor evaluations as an HTML report with PNGs."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="turn search results and predictor evaluations into an HTML report with PNGs",
        description="Write OUT/report.html (self-contained: images embedded, no network needed) and "
        "the same figures as PNGs beside it, from a search result (`latbench search`'s search.json or "
        "its folder) and/or a predictor evaluation (`latbench evaluate`'s evaluation.json): the "
        "accuracy-latency front with every trial, the teacher, the budget and the Pareto set at "
        "predicted and measured latency; hypervolume against trials (beside --baseline searches); "
        "the Pareto students' per-operator latency breakdown and table; each predictor's parity plot "
        "and accuracy beside the noise floor; and the provenance of every number.",
    )
    p.add_argument("results", nargs="+", help="search.json and/or evaluation.json (or their folders)")
    p.add_argument("--out", required=True, help="output folder (report.html and PNGs)")
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        help="another search with the same reference point (e.g. --sampler random) to compare "
        "hypervolume with; may be repeated",
    )
    p.add_argument("--title", help="the page's title [from the results]")
    p.set_defaults(run=cmd_report)


PARSERS = {"report": register}


def cmd_report(args: argparse.Namespace) -> int:
    from latbench.reports.build import build_report

    files = build_report(
        args.results, args.out, baselines=args.baseline, title=args.title, command=["latbench", *args.argv]
    )
    for note in files.notes:
        print(f"latbench: note: {note}", file=sys.stderr)
    names = ", ".join(p.name for p in files.images)
    print(f"wrote {files.html} ({len(files.images)} figures, also as PNG beside it: {names})")
    return 0
