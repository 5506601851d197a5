"""``latbench stability``: is this machine quiet enough to measure right now?"""

from __future__ import annotations

import argparse
import json
from typing import Any

from latbench.cli.common import console, progress_bar


def register(sub: Any) -> None:
    from latbench.stability import PROBE_ARCHS, StabilitySettings

    d = StabilitySettings()
    p = sub.add_parser(
        "stability",
        help="check that this machine is quiet enough to measure, before a long profile",
        description="Say how reproducible measurements are here right now, in the spirit of pyperf's "
        "system check: other processes' CPU use and the hypervisor's steal time (/proc/stat), the load "
        "average, the frequency governor and core clocks, free memory; then a probe: "
        f"{len(PROBE_ARCHS)} encoders measured in --passes passes --pause-s apart, and for each way of "
        "summarising a spec's samples (median, minimum, 10th percentile, interquartile mean) how far "
        "two passes disagree. Exit code 0 when quiet or usable, 1 when noisy.",
    )
    p.add_argument("--target", default=d.target, help=f"target to probe [{d.target}]")
    p.add_argument(
        "--passes", type=int, default=d.passes, help=f"passes over the probe's encoders [{d.passes}]"
    )
    p.add_argument("--pause-s", type=float, default=d.pause_s, help=f"seconds between passes [{d.pause_s:g}]")
    p.add_argument(
        "--samples", type=int, default=d.samples, help=f"samples per encoder and pass [{d.samples}]"
    )
    p.add_argument("--batch", type=int, default=d.batch, help=f"the probe's batch size [{d.batch}]")
    p.add_argument("--seq", type=int, default=d.seq, help=f"the probe's sequence length [{d.seq}]")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_stability)


PARSERS = {"stability": register}


def stability_settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from latbench.stability import StabilitySettings

    return StabilitySettings(
        target=args.target,
        passes=args.passes,
        pause_s=args.pause_s,
        samples=args.samples,
        batch=args.batch,
        seq=args.seq,
    )


def cmd_stability(args: argparse.Namespace) -> int:
    from rich.table import Table

    from latbench.stability import check_stability

    settings = stability_settings(args)
    with progress_bar("probing", transient=True, disable=args.json) as bar:
        task = bar.add_task("", total=settings.passes)

        def on_pass(k: int) -> None:
            bar.update(task, completed=k, description=f"pass {k + 1} of {settings.passes}")

        report = check_stability(settings, on_pass=on_pass)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
        return 0 if report.verdict != "noisy" else 1
    out = console()
    checks = Table(title="the machine")
    for col in ("check", "", "now", "advice"):
        checks.add_column(col)
    for c in report.checks:
        mark = {True: "[green]ok[/]", False: "[red]no[/]", None: "[dim]n/a[/]"}[c.ok]
        checks.add_row(c.name, mark, c.value, c.advice)
    out.print(checks)
    table = Table(
        title=f"{settings.passes} passes {settings.pause_s:g} s apart on {settings.target}: "
        "how far two passes' figures of one encoder disagree"
    )
    for col in ("figure", "pairs", "within ±5%", "within ±10%", "median", "p90"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for a in report.agreements:
        table.add_row(
            a.estimator, str(len(a.differences)), f"{a.within_5:.0%}", f"{a.within_10:.0%}",
            f"{a.median:.1%}", f"{a.p90:.1%}",
        )  # fmt: skip
    out.print(table)
    best = report.best
    out.print(
        f"verdict: {report.verdict} (the {best.estimator} reproduces best: {best.within_10:.0%} "
        f"of pass pairs within ±10%, median difference {best.median:.1%})",
        markup=False,
    )
    return 0 if report.verdict != "noisy" else 1
