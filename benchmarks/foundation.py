"""Foundation benchmark: noise floor, profiling throughput and additivity gap.

    .venv/bin/python benchmarks/foundation.py [--target onnxruntime-cpu] [--encoders 24]

Profiles one plan (the quick plan's layer shapes and workloads, both block contexts, and
``--encoders`` sampled 2-8-layer encoders) twice, into two fresh databases, one pass after
the other, and prints:

(a) the noise floor: |m1 - m2| / ((m1 + m2) / 2) between the two passes' medians of each
    spec — the median and 90th percentile over all specs, and per spec kind;
(b) profiling throughput: specs per minute of each pass (build + warm-up + sampling);
(c) the additivity gap: for each encoder, its measured latency against the sum of its
    parts — embedding + one block per layer, with blocks measured *isolated* and in
    *model* context, and embedding + every operator — as the share within ±10% and the
    median signed error. The first pass's measurements are used; the second pass's give
    the same figures again, so their spread is visible.

Run it alone: anything else on the machine is noise in these figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from latbench.backends.registry import default_registry
from latbench.db import MeasurementDB
from latbench.fingerprint import collect
from latbench.measurement import quantile
from latbench.plans import QUICK, Plan, ProfileSpace
from latbench.predictors.evaluation import additivity
from latbench.profile import run_profile
from latbench.specs import EncoderSpec
from latbench.target import Target
from latbench.timing import ProtocolSettings


def bench_plan(encoders: int, seed: int) -> Plan:
    s = QUICK.space
    space = ProfileSpace(
        hidden=s.hidden,
        heads=s.heads,
        ffn_ratios=s.ffn_ratios,
        seq_lens=s.seq_lens,
        batches=s.batches,
        layers=(2, 8),
    )
    return Plan(
        name="foundation-bench", space=space, contexts=("model", "isolated"), encoders=encoders, seed=seed
    )


def rel_diff(a: float, b: float) -> float:
    return abs(a - b) / ((a + b) / 2)


def pct(values: list[float], q: float) -> float:
    return quantile(sorted(values), q) * 100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", default="onnxruntime-cpu")
    parser.add_argument("--encoders", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/foundation.json")
    args = parser.parse_args(argv)

    target = Target.parse(args.target)
    backend = default_registry().get_available(target.name)
    target = backend.normalize(target)
    fingerprint = collect(backend.fingerprint_extras())
    specs = [s for s in bench_plan(args.encoders, args.seed).specs()]
    encoders = [s for s in specs if isinstance(s, EncoderSpec)]
    print(f"target {target} on {fingerprint.summary()}")
    print(f"plan: {len(specs)} specs ({len(encoders)} encoders of 2-8 layers), profiled twice")

    passes = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):
            with MeasurementDB(Path(tmp) / f"pass{i}.db") as db:
                start = time.perf_counter()
                result = run_profile(specs, backend, target, fingerprint, db, ProtocolSettings())
                elapsed = time.perf_counter() - start
                rows = db.measurements()
            medians = {m.spec: m.median_s for m in rows}
            unstable = sum(not m.stable for m in rows)
            gaps = {name: gap.to_dict() for name, gap in additivity(rows).items()}
            passes.append(
                {"medians": medians, "elapsed_s": elapsed, "unstable": unstable, "additivity": gaps}
            )
            rate = result.measured / elapsed * 60
            print(f"pass {i + 1}: {result.measured} specs in {elapsed:.0f} s = {rate:.1f} specs/min", end="")
            print(f"; {unstable} flagged unstable")

    a, b = passes[0]["medians"], passes[1]["medians"]
    noise = {
        kind: [rel_diff(a[s], b[s]) for s in specs if s.kind == kind] for kind in ("op", "block", "encoder")
    }
    noise["all"] = [d for kind in ("op", "block", "encoder") for d in noise[kind]]
    report = {
        "target": str(target),
        "fingerprint": fingerprint.to_dict(),
        "specs": len(specs),
        "noise_floor": {
            k: {"n": len(v), "median_pct": pct(v, 0.5), "p90_pct": pct(v, 0.9)} for k, v in noise.items()
        },
        "throughput_specs_per_min": [len(specs) / p["elapsed_s"] * 60 for p in passes],
        "unstable": [p["unstable"] for p in passes],
        "additivity": [p["additivity"] for p in passes],
    }
    print("\n(a) noise floor |m1-m2|/mean between two independent passes")
    for kind, row in report["noise_floor"].items():
        print(f"    {kind:8s} n={row['n']:4d}  median {row['median_pct']:5.1f}%   p90 {row['p90_pct']:5.1f}%")
    tput = report["throughput_specs_per_min"]
    print(f"(b) throughput: {tput[0]:.1f} and {tput[1]:.1f} specs/min")
    print(f"(c) additivity over {len(encoders)} encoders (pass 1 | pass 2):")
    print("    share within ±10% of the measured encoder, and median signed error of the sum")
    labels = {
        "isolated": "sum of isolated blocks",
        "model": "sum of in-context blocks",
        "operators": "sum of operators",
    }
    for name, label in labels.items():
        gaps = [p[name] for p in report["additivity"] if name in p]
        if len(gaps) < 2:
            print(f"    {label:26s} not measured in both passes")
            continue
        r1, r2 = gaps
        print(
            f"    {label:26s} {r1['within_10pct'] * 100:5.1f}% | {r2['within_10pct'] * 100:5.1f}%"
            f"   error {r1['median_error_pct']:+6.1f}% | {r2['median_error_pct']:+6.1f}%   n={r1['n']}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
