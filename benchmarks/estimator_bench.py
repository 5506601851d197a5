"""Which figure of a spec's samples reproduces over time? (issue 20, item 1)

    .venv/bin/python benchmarks/estimator_bench.py [--plan quick] [--duration-min 66] [--every-min 6]
    .venv/bin/python benchmarks/estimator_bench.py --analyse-only [--out DIR]

Profiles one plan again and again (a pass every ``--every-min`` minutes for
``--duration-min`` minutes), each pass into its own database under ``--out``, and on every
other pass pins this process to one CPU (``--pin``, single-thread targets), recording each
pass's start, the hypervisor's steal time and the load while it ran. Then, from the stored
raw samples, for each way of summarising a spec's samples (``latbench.measurement.ESTIMATORS``:
median, minimum, 10th percentile, interquartile mean) and for pairs of passes at least
``--apart-min`` minutes apart and for back-to-back pairs, it prints how often two passes'
figures of a spec agree within ±5% and ±10%, with the median and 90th percentile
difference; also each figure divided by the pair's common factor ("normalised"), and the
pinned and unpinned passes apart.

Resumable: a rerun keeps the passes already in ``--out`` and adds passes until the
duration, counted from the first pass, is over. Run it alone: anything else on the
machine is noise in these figures (which is the point, but it should be the machine's
noise, not ours).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from latbench.backends.registry import default_registry
from latbench.db import MeasurementDB
from latbench.fingerprint import collect
from latbench.measurement import Measurement
from latbench.plans import load_plan
from latbench.profile import run_profile
from latbench.stability import CpuTimes, agreement
from latbench.target import Target
from latbench.timing import ProtocolSettings

STATE = "passes.json"


def read_state(out: Path) -> list[dict[str, Any]]:
    path = out / STATE
    return json.loads(path.read_text()) if path.exists() else []


def write_state(out: Path, passes: list[dict[str, Any]]) -> None:
    tmp = out / (STATE + ".tmp")
    tmp.write_text(json.dumps(passes, indent=1))
    tmp.replace(out / STATE)


def proc_stat() -> CpuTimes | None:
    try:
        return CpuTimes.parse(Path("/proc/stat").read_text())
    except (OSError, ValueError):
        return None


def one_pass(k: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    backend, target = default_registry().resolve(Target.parse(args.target))
    fingerprint = collect(backend.fingerprint_extras())
    specs = load_plan(args.plan).specs()
    pinned = bool(args.pin) and k % 2 == 1 and int(target.get("threads", 1)) == 1  # type: ignore[arg-type]
    affinity = os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, {max(affinity)})
    before, load_before = proc_stat(), os.getloadavg()[0]
    started = time.time()
    try:
        with MeasurementDB(out / f"pass-{k:02d}.db") as db:
            result = run_profile(specs, backend, target, fingerprint, db, ProtocolSettings(), shuffle_seed=k)
    finally:
        os.sched_setaffinity(0, affinity)
    after = proc_stat()
    steal = None
    if before and after:
        total = (after.busy + after.idle + after.steal) - (before.busy + before.idle + before.steal)
        steal = (after.steal - before.steal) / total if total > 0 else None
    return {
        "pass": k,
        "start": started,
        "elapsed_s": time.time() - started,
        "pinned": pinned,
        "measured": result.measured,
        "unstable": result.unstable,
        "steal": steal,
        "load_before": load_before,
        "target": str(target),
    }


def run(args: argparse.Namespace, out: Path) -> None:
    passes = read_state(out)
    first = passes[0]["start"] if passes else time.time()
    while True:
        k = len(passes)
        if passes and time.time() - first > args.duration_min * 60:
            return
        if passes:
            wait = passes[-1]["start"] + args.every_min * 60 - time.time()
            if wait > 0:
                time.sleep(wait)
        record = one_pass(k, args, out)
        passes.append(record)
        write_state(out, passes)
        steal = f"{record['steal']:.1%}" if record["steal"] is not None else "n/a"
        print(
            f"pass {k}: {record['measured']} specs in {record['elapsed_s']:.0f} s"
            f"{' (pinned)' if record['pinned'] else ''}, steal {steal}, load {record['load_before']:.2f}",
            flush=True,
        )


def load_passes(out: Path) -> tuple[list[dict[str, Any]], list[list[Measurement]]]:
    passes = read_state(out)
    rows = []
    for record in passes:
        with MeasurementDB(out / f"pass-{record['pass']:02d}.db", create=False) as db:
            rows.append(db.measurements())
    return passes, rows


def analyse(out: Path, apart_min: float) -> dict[str, Any]:
    passes, rows = load_passes(out)
    if len(passes) < 2:
        raise SystemExit(f"{out}: fewer than two passes to compare")
    starts = [p["start"] for p in passes]
    span_min = (max(starts) - min(starts)) / 60
    report: dict[str, Any] = {"passes": passes, "span_min": span_min, "tables": {}}
    print(f"{len(passes)} passes over {span_min:.0f} min, {len(rows[0])} specs each ({passes[0]['target']})")
    groups = {"all passes": list(range(len(passes)))}
    if any(p["pinned"] for p in passes):
        groups["unpinned"] = [i for i, p in enumerate(passes) if not p["pinned"]]
        groups["pinned"] = [i for i, p in enumerate(passes) if p["pinned"]]
    spacing = max(1.0, min(b - a for a, b in itertools.pairwise(starts)) / 60) if len(starts) > 1 else 1.0
    windows = {
        f">= {apart_min:g} min apart": (apart_min * 60, float("inf")),
        "back to back": (0.0, spacing * 60 * 1.5),
    }
    for group, index in groups.items():
        for window, (lo, hi) in windows.items():
            for normalise in (False, True):
                found = agreement(
                    [rows[i] for i in index],
                    starts=[starts[i] for i in index],
                    min_gap_s=lo,
                    max_gap_s=hi,
                    normalise=normalise,
                )
                if not found:
                    continue
                title = f"{group}, {window}" + (", normalised" if normalise else "")
                report["tables"][title] = [a.to_dict() for a in found]
                print(f"\n{title}")
                print(f"    {'figure':20s} {'pairs':>6s} {'±5%':>6s} {'±10%':>6s} {'median':>7s} {'p90':>6s}")
                for a in found:
                    print(
                        f"    {a.estimator:20s} {len(a.differences):6d} {a.within_5:6.1%} {a.within_10:6.1%} "
                        f"{a.median:7.1%} {a.p90:6.1%}"
                    )
    lo = apart_min * 60
    print(
        f"\nby spec kind, all passes >= {apart_min:g} min apart: share within ±5% / ±10% (median difference)"
    )
    kinds = sorted({m.spec.kind for m in rows[0]})
    print(f"    {'figure':20s} " + " ".join(f"{k:>24s}" for k in kinds))
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        kind_rows = [[m for m in p if m.spec.kind == kind] for p in rows]
        for a in agreement(kind_rows, starts=starts, min_gap_s=lo):
            by_kind.setdefault(a.estimator, {})[kind] = a.to_dict()
    for estimator, per in by_kind.items():
        cells = [
            f"{per[k]['within_5']:6.1%} / {per[k]['within_10']:6.1%} ({per[k]['median_difference']:4.1%})"
            for k in kinds
        ]
        print(f"    {estimator:20s} " + " ".join(f"{c:>24s}" for c in cells))
    report["by_kind"] = by_kind
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", default="onnxruntime-cpu:threads=1")
    parser.add_argument("--plan", default="quick")
    parser.add_argument("--duration-min", type=float, default=66.0)
    parser.add_argument("--every-min", type=float, default=6.0)
    parser.add_argument("--apart-min", type=float, default=30.0)
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default=".latbench-bench/estimators")
    parser.add_argument("--analyse-only", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.analyse_only:
        run(args, out)
    report = analyse(out, args.apart_min)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
