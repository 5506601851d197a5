"""``latbench profile`` and ``latbench export``: a plan measured into a database, and the
database written out as CSV or Parquet."""

from __future__ import annotations

import argparse
from typing import Any

from latbench.cli.common import (
    console,
    db_option,
    machine_fingerprint,
    positive,
    progress_bar,
    resolve_target,
)
from latbench.errors import ConfigError


def register_profile(sub: Any) -> None:
    from latbench.profile import DEFAULT_CHUNK
    from latbench.timing import ProtocolSettings

    p = sub.add_parser(
        "profile",
        help="measure a plan's operators, blocks and encoders into a database",
        description="Measure every spec of a profile plan on a target and store the raw samples "
        "in a measurement database. Resumable: a rerun measures only what is missing, and "
        "Ctrl-C loses at most the chunk in flight. Several processes may profile into one "
        "database at once; they split the work.",
    )
    p.add_argument("--target", required=True, help="target, e.g. onnxruntime-cpu or torch-cpu:threads=1")
    p.add_argument(
        "--plan", default="quick", help="built-in plan (quick, standard) or a .toml plan file [quick]"
    )
    db_option(p)
    p.add_argument(
        "--chunk",
        type=int,
        default=DEFAULT_CHUNK,
        help=f"specs measured together, interleaved [{DEFAULT_CHUNK}]",
    )
    samples = ProtocolSettings().samples
    p.add_argument(
        "--samples",
        type=int,
        default=samples,
        help=f"samples per spec (fewer only for slow specs) [{samples}]",
    )
    p.add_argument(
        "--limit", type=int, default=0, help="measure at most this many specs of the plan (0: all)"
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be measured and exit")
    p.set_defaults(run=cmd_profile)


def register_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a measurement database to CSV or Parquet",
        description="Write one row per measurement (statistics, raw samples, target, fingerprint).",
    )
    db_option(p)
    p.add_argument("--out", required=True, help="output file (.csv or .parquet)")
    p.add_argument("--format", choices=("csv", "parquet"), default=None, help="default: from --out's suffix")
    p.set_defaults(run=cmd_export)


PARSERS = {"profile": register_profile, "export": register_export}


def cmd_profile(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from latbench.db import MeasurementDB
    from latbench.plans import PlanSummary, load_plan
    from latbench.profile import run_profile
    from latbench.timing import ProtocolSettings

    positive("--chunk", args.chunk)
    positive("--samples", args.samples)
    if args.limit < 0:
        raise ConfigError("--limit must be >= 0")
    plan = load_plan(args.plan)
    backend, target = resolve_target(args.target)
    specs = plan.specs()
    if args.limit:
        specs = specs[: args.limit]
    for spec in specs:
        backend.check_spec(spec)  # e.g. a precision the target cannot run: before any database
    out = console()
    counts = ", ".join(f"{n} {kind}{'s' * (n != 1)}" for kind, n in PlanSummary.of(specs).counts.items())
    if args.dry_run:
        out.print(f"plan {plan.name}: {len(specs)} specs ({counts}) on {target}", markup=False)
        for spec in specs:
            out.print(f"  {spec.label}", markup=False)
        return 0
    settings = ProtocolSettings.with_samples(args.samples)
    fingerprint = machine_fingerprint(backend)
    with MeasurementDB(args.db) as db:
        todo = len(specs) - len({s.key for s in specs} & db.measured_keys(target.key, fingerprint.key))
        out.print(
            f"plan {plan.name}: {len(specs)} specs ({counts}) on {target}; {todo} to measure → {db.url}",
            markup=False,
        )
        with progress_bar("profiling", console=out, transient=False, disable=todo == 0) as bar:
            task = bar.add_task("", total=todo)

            def progress(n: int, label: str) -> None:
                bar.update(task, advance=n, description=escape(label[:48]))  # labels hold [...]

            result = run_profile(
                specs, backend, target, fingerprint, db, settings, chunk_size=args.chunk, progress=progress
            )
    out.print(
        f"measured {result.measured} new specs in {result.elapsed_s:.0f} s "
        f"({result.already_measured} were already in the database; {result.unstable} flagged unstable)"
    )
    if result.failed:
        out.print(f"{len(result.failed)} specs could not be measured (a rerun retries them):", markup=False)
        for _, reason in result.failed[:10]:
            out.print(f"  {reason}", markup=False)
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from latbench.db import MeasurementDB

    with MeasurementDB(args.db, create=False) as db:
        rows = db.export(args.out, args.format)
    print(f"wrote {rows} measurements to {args.out}")
    return 0
