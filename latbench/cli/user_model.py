"""``latbench measure --onnx PATH`` / ``--hf-model DIR``: a user's own model measured,
broken down by operator, printed, and stored on request (``latbench.user_models``)."""

from __future__ import annotations

import argparse
import json
import sys

from latbench.cli.common import console, positive
from latbench.errors import ConfigError


def measure_user_model(args: argparse.Namespace) -> int:
    from latbench.db import MeasurementDB, default_worker
    from latbench.fingerprint import collect
    from latbench.timing import ProtocolSettings
    from latbench.user_models import measure_user_model

    if args.precision != "fp32":
        raise ConfigError("a user model runs in the precision it was exported in; leave --precision at fp32")
    positive("--batch", args.batch)
    positive("--seq", args.seq)
    db = MeasurementDB(args.db) if args.db else None  # opened first: a bad --db fails before measuring
    try:
        measured = measure_user_model(
            onnx_path=args.onnx,
            hf_model=args.hf_model,
            target=args.target,
            batch=args.batch,
            seq=args.seq,
            settings=ProtocolSettings.with_samples(args.samples),
        )
        if db is not None:
            fingerprint, worker = collect(), default_worker()
            rows = [result.to_measurement(spec, fingerprint, worker=worker) for spec, result in measured]
            if db.add(rows) < len(rows):
                print(
                    "latbench: note: this model was already stored for this target and machine; the "
                    "database keeps the earlier measurement",
                    file=sys.stderr,
                )
    finally:
        if db is not None:
            db.close()
    results = [result for _, result in measured]
    if args.json:
        documents = [{**r.to_dict(), "spec": s.to_dict(), "key": s.key} for s, r in measured]
        print(json.dumps(documents if len(documents) > 1 else documents[0], indent=2))
        return 0
    print_results(results)
    return 0


def print_results(results) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    out = console()
    for r in results:
        table = Table(title=f"{r.what} on {r.target}, batch {r.batch}, sequence {r.seq}")
        table.add_column("quantity")
        table.add_column("value", justify="right")
        st = r.stats
        for name, value in (("median", st.median_s), ("p90", st.p90_s), ("p99", st.p99_s), ("IQR", st.iqr_s)):
            table.add_row(f"{name} (ms)", f"{value * 1e3:.3f}")
        table.add_row("samples", str(st.n))
        table.add_row("stable (IQR/median)", f"{'yes' if r.stable else 'no'} ({st.iqr_ratio:.3f})")
        table.add_row("build time (s)", f"{r.build_time_s:.2f}")
        out.print(table)
        if r.breakdown is not None:
            b = r.breakdown
            bt = Table(
                title=f"per operator (ONNX Runtime's profile of {b.nodes} nodes, shared out of the median)"
            )
            for col in ("operator", "ms", "share"):
                bt.add_column(col, justify="left" if col == "operator" else "right")
            for name, ms in (*b.operators_ms.items(), ("unattributed", b.unattributed_ms)):
                bt.add_row(name, f"{ms:.4f}", f"{ms / b.latency_ms:.1%}")
            out.print(bt)
