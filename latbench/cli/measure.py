"""``latbench devices``, ``latbench measure`` and ``latbench specsheets``: what this machine
can run, one encoder measured end to end, and the roofline's spec sheets."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from latbench.cli.common import console, machine_fingerprint, positive, resolve_target
from latbench.errors import LatbenchError


def register_devices(sub: Any) -> None:
    p = sub.add_parser(
        "devices",
        help="list the targets and whether each can run here",
        description="List every target with whether it is available here (and why not), "
        "its default settings, and this machine's fingerprint.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=cmd_devices)


def register_measure(sub: Any) -> None:
    from latbench.timing import ProtocolSettings

    p = sub.add_parser(
        "measure",
        help="measure one whole encoder end to end",
        description="Measure one encoder (embeddings + layers) on a target with the shared protocol.",
    )
    p.add_argument("--target", required=True, help="target, e.g. onnxruntime-cpu")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--arch",
        help='architecture JSON or a path to one, e.g. \'{"layers":4,"hidden":256,"heads":4,"ffn":1024}\'',
    )
    src.add_argument(
        "--hf-config", help="a Hugging Face config.json (BERT, RoBERTa, DistilBERT...) or its folder"
    )
    src.add_argument(
        "--onnx",
        metavar="PATH",
        help="your own ONNX encoder: inputs built from its declared inputs (ids within its vocabulary, "
        "masks of ones; axis 0 bound to --batch, axis 1 to --seq), timed on onnxruntime-cpu and "
        "broken down by operator",
    )
    src.add_argument(
        "--hf-model",
        metavar="DIR",
        help="a local Hugging Face checkpoint or config (BERT, RoBERTa, DistilBERT, ELECTRA; with or "
        "without a classification head), exported as users deploy it (input ids and attention mask, "
        "opset 17) and timed on onnxruntime-cpu with a breakdown, and as eager PyTorch",
    )
    add_workload_options(p)
    samples = ProtocolSettings().samples
    p.add_argument("--samples", type=int, default=samples, help=f"samples [{samples}]")
    p.add_argument("--db", default=None, help="also store the measurement in this database")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=cmd_measure)


def add_workload_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=1, help="batch size [1]")
    p.add_argument("--seq", type=int, default=128, help="sequence length [128]")
    p.add_argument("--precision", default="fp32", help="fp32, bf16... as the target supports [fp32]")


def register_specsheets(sub: Any) -> None:
    p = sub.add_parser(
        "specsheets",
        help="list the device spec sheets the roofline predictor knows",
        description="Peak compute per precision and memory bandwidth of the CPUs, GPUs and TPUs shipped "
        "with latbench (with their sources), and this machine's estimate (auto).",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_specsheets)


PARSERS = {"devices": register_devices, "measure": register_measure, "specsheets": register_specsheets}


def cmd_devices(args: argparse.Namespace) -> int:
    from latbench.backends.registry import default_registry
    from latbench.fingerprint import collect
    from latbench.target import Target

    rows = []
    for backend in default_registry():
        availability = backend.availability()
        try:
            settings = str(backend.normalize(Target(backend.name))) if availability.available else ""
        except LatbenchError as exc:
            settings = f"(invalid defaults: {exc})"
        rows.append(
            {
                "target": backend.name,
                "device": backend.device,
                "available": availability.available,
                "reason": availability.reason,
                "default": settings,
                "description": backend.description,
            }
        )
    fingerprint = collect()
    if args.json:
        print(json.dumps({"targets": rows, "fingerprint": fingerprint.to_dict()}, indent=2))
        return 0
    from rich.table import Table

    table = Table(title="latbench targets")
    for col in ("target", "device", "available", "details"):
        table.add_column(col)
    for row in rows:
        mark = "[green]yes[/]" if row["available"] else "[red]no[/]"
        table.add_row(row["target"], row["device"], mark, row["default"] + "  " + row["reason"])
    out = console()
    out.print(table)
    out.print(f"fingerprint {fingerprint.key}: {fingerprint.summary()}")
    libs = ", ".join(f"{k} {v}" for k, v in fingerprint.libraries)
    out.print(f"libraries: {libs}")
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from latbench.arch import Arch, Workload
    from latbench.db import default_worker
    from latbench.profile import measure_specs
    from latbench.specs import EncoderSpec
    from latbench.timing import ProtocolSettings

    positive("--samples", args.samples)
    if args.onnx or args.hf_model:
        from latbench.cli.user_model import measure_user_model

        return measure_user_model(args)
    arch = Arch.from_json(args.arch) if args.arch else Arch.from_hf_config(args.hf_config)
    spec = EncoderSpec(arch, Workload(args.batch, args.seq, args.precision))
    backend, target = resolve_target(args.target)
    backend.check_spec(spec)
    fingerprint = machine_fingerprint(backend)
    db = None
    if args.db:
        from latbench.db import MeasurementDB

        db = MeasurementDB(args.db)  # opened first: a bad --db fails before any measuring
    try:
        settings = ProtocolSettings.with_samples(args.samples)
        (m,) = measure_specs(backend, target, fingerprint, [spec], settings, worker=default_worker())
        if db is not None and not db.add([m]):
            print(
                "latbench: note: this encoder was already stored for this target and machine; "
                "the database keeps the earlier measurement",
                file=sys.stderr,
            )
    finally:
        if db is not None:
            db.close()
    st = m.stats
    result = {
        "target": str(target),
        "arch": arch.to_dict(),
        "workload": spec.workload.to_dict(),
        "params": arch.params,
        "gflops": arch.flops(spec.workload) / 1e9,
        "latency_ms": m.latency_ms,
        **st.summary_ms(),
        "stable": m.stable,
        "build_time_s": m.build_time_s,
        "fingerprint": fingerprint.key,
        "kernels": [{"op_type": k.op_type, "count": k.count, "time_ms": k.time_s * 1e3} for k in m.kernels],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from rich.table import Table

    table = Table(title=f"{spec.label} on {target}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("parameters", f"{arch.params / 1e6:.2f} M")
    table.add_row("GFLOPs", f"{result['gflops']:.3f}")
    for key in ("median_ms", "p90_ms", "p99_ms", "iqr_ms"):
        table.add_row(key.replace("_ms", " (ms)"), f"{result[key]:.3f}")
    table.add_row("samples", str(st.n))
    table.add_row("stable (IQR/median)", f"{'yes' if m.stable else 'no'} ({st.iqr_ratio:.3f})")
    table.add_row("build time (s)", f"{m.build_time_s:.2f}")
    out = console()
    out.print(table)
    if m.kernels:
        kt = Table(title="kernels per inference (backend profiler)")
        for col in ("kernel", "count", "time (ms)"):
            kt.add_column(col, justify="right" if col != "kernel" else "left")
        for k in m.kernels:
            kt.add_row(k.op_type, str(k.count), f"{k.time_s * 1e3:.3f}")
        out.print(kt)
    return 0


def cmd_specsheets(args: argparse.Namespace) -> int:
    from latbench.predictors.roofline import detect_cpu_spec, spec_sheets

    sheets = {"auto": detect_cpu_spec(), **spec_sheets()}
    if args.json:
        print(json.dumps({k: v.to_dict() for k, v in sheets.items()}, indent=1))
        return 0
    print(f"{'device':24s} {'kind':4s} {'fp32 TFLOP/s':>12s} {'bf16 TFLOP/s':>12s} {'GB/s':>7s}  source")
    for key, sheet in sheets.items():
        bf16 = sheet.peak_flops.get("bf16")
        print(
            f"{key:24s} {sheet.kind:4s} {sheet.peak_flops.get('fp32', 0) / 1e12:12.1f} "
            f"{bf16 / 1e12 if bf16 else float('nan'):12.1f} {sheet.memory_bandwidth_Bps / 1e9:7.0f}  "
            f"{sheet.source[0] if sheet.source else 'estimated on this machine'}"
        )
    return 0
