"""Target benchmark: what a new hardware target's measurements are worth, in one run.

    .venv/bin/python benchmarks/target_bench.py [--target T ...] [--plan quick] [--encoders N]
                                                [--budget-s S] [--data DIR] [--json FILE]

For each ``--target`` (default: the GPU targets of issue 4, ``torch-cuda:mode=eager``,
``torch-cuda:mode=cuda-graph`` and ``xla:platform=gpu``; on a machine without a GPU name
CPU ones, e.g. ``--target torch-cpu --target xla:platform=cpu``) it profiles the plan
twice, into two databases under ``--data`` (one pass after the other), and prints:

(a) **sample spread** within each measurement of pass 1: the coefficient of variation
    (std/mean) and IQR/median of the samples, median and p90 over the specs. On the GPU
    targets the samples are CUDA-event times (XLA: ``block_until_ready`` on the host
    clock). A sample is the mean of the calls in its >= 2 ms window, so for fast specs
    this is the spread of such windows, smaller than that of single calls;
(b) **noise floor**: the same specs measured in pass 1 and in pass 2 (the same process,
    each pass in its own shuffled order), over every spec and over the encoders
    (``latbench.predictors.metrics.noise_floor``);
(c) **additivity gap**: every encoder against the sum of its parts (blocks alone, blocks
    in model context, operators) in each pass (``latbench.predictors.evaluation.additivity``);
(d) **predictor accuracy** on held-out encoders of pass 1 (random k-fold and the
    hidden-size split, as ``latbench evaluate``), with the noise floor of the same
    encoders from pass 2 beside it, and the share within ±10% against NNLQP's bar (99.9%
    within ±10% for ViTs on a GPU with TensorRT);
(e) **build time** per spec (engine build, compile, CUDA-graph capture), recorded apart
    from latency.

A target that cannot run here is reported with its one-line reason and skipped (also
when its backend refuses the target while profiling). The databases are resumable: a
rerun with the same ``--data`` measures only what is missing (delete the folder for a
fresh noise floor: a pass resumed hours later measures the machine of another hour).
``--budget-s`` starts no pass that would end past that many seconds, judging by the
target's previous pass, so the run fits a lent machine's lease; the JSON is rewritten
after every pass, so a run cut short keeps what it measured. Run it alone: anything else
on the machine is noise in these figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latbench.backends.registry import Registry, default_registry
from latbench.db import MeasurementDB
from latbench.errors import ConfigError, LatbenchError, TargetUnavailableError
from latbench.fingerprint import Fingerprint, collect
from latbench.measurement import Measurement, quantile
from latbench.plans import Plan, load_plan
from latbench.predictors import registry as predictor_registry
from latbench.predictors.evaluation import additivity, make_splits, score_splits
from latbench.predictors.metrics import noise_floor
from latbench.predictors.settings import EvaluationSettings
from latbench.profile import run_profile
from latbench.specs import EncoderSpec
from latbench.target import Target
from latbench.timing import ProtocolSettings

GPU_TARGETS = ("torch-cuda:mode=eager", "torch-cuda:mode=cuda-graph", "xla:platform=gpu")
#: NNLQP (Liu et al., 2022): 99.9% of ViT latencies within ±10% on a GPU with TensorRT.
NNLQP_WITHIN_10PCT = 0.999
KINDS = ("op", "block", "encoder")
PASSES = 2


# --- figures from measurements (pure) ---------------------------------------------------


def sample_spread(rows: Sequence[Measurement]) -> dict[str, dict[str, float]]:
    """Per kind (and ``all``): the median and p90 over the specs of each measurement's
    coefficient of variation (std/mean of its samples) and IQR/median, in percent."""

    def cov(m: Measurement) -> float:
        times = m.times_s
        return statistics.stdev(times) / statistics.fmean(times) if len(times) > 1 else 0.0

    out: dict[str, dict[str, float]] = {}
    for kind in (*KINDS, "all"):
        chosen = [m for m in rows if kind in ("all", m.spec.kind)]
        if not chosen:
            continue
        covs = sorted(cov(m) * 100 for m in chosen)
        iqrs = sorted(m.stats.iqr_ratio * 100 for m in chosen)
        out[kind] = {
            "n": len(chosen),
            "cov_median_pct": quantile(covs, 0.5),
            "cov_p90_pct": quantile(covs, 0.9),
            "iqr_median_pct": quantile(iqrs, 0.5),
            "iqr_p90_pct": quantile(iqrs, 0.9),
            "unstable": sum(not m.stable for m in chosen),
        }
    return out


def pass_noise_floor(first: Sequence[Measurement], second: Sequence[Measurement]) -> dict[str, Any]:
    """``NoiseFloor.to_dict()`` of the specs measured in both passes, per kind and ``all``."""
    again = {m.spec.key: m.latency_s for m in second}
    out: dict[str, Any] = {}
    for kind in (*KINDS, "all"):
        pairs = [
            (m.latency_s, again[m.spec.key])
            for m in first
            if kind in ("all", m.spec.kind) and m.spec.key in again
        ]
        if pairs:
            a, b = (np.array(v) for v in zip(*pairs, strict=True))
            out[kind] = noise_floor(a, b).to_dict()
    return out


def predictor_accuracy(
    first: Sequence[Measurement],
    second: Sequence[Measurement],
    predictors: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Each predictor fitted on pass 1's training encoders and scored on its held-out ones
    (random k-fold, then the hidden-size split), with the noise floor of those encoders
    (pass 1 against pass 2) beside; a split the data cannot give is recorded as an error."""
    out: dict[str, Any] = {}
    for name in ("random", "hidden"):
        try:
            splits = make_splits(first, EvaluationSettings(split=name, folds=folds, seed=seed))
        except ConfigError as exc:
            out[name] = {"error": str(exc)}
            continue
        (result,) = score_splits(splits, predictors, second)
        out[name] = {
            "folds": len(result.folds),
            "test": len(result.test),
            "noise_floor": result.floor.to_dict() if result.floor else None,
            "predictors": {
                s.predictor: (
                    {"accuracy": s.accuracy.to_dict(), "extrapolated": s.extrapolated}
                    if s.accuracy
                    else {"error": s.error}
                )
                for s in result.scored
            },
        }
    return out


def build_times(rows: Sequence[Measurement]) -> dict[str, float]:
    """Median and max build time per spec (s), and the medians of the backend's own
    build figures (``compile_s``, ``capture_s``, ``xla_compile_s``, ``trt_build_s``)."""
    if not rows:
        return {}
    builds = sorted(m.build_time_s for m in rows)
    out = {"build_median_s": quantile(builds, 0.5), "build_max_s": builds[-1]}
    for name in ("compile_s", "capture_s", "xla_compile_s", "trt_build_s"):
        values = sorted(v for m in rows if (v := m.extra(name)) is not None)
        if values:
            out[f"{name.removesuffix('_s')}_median_s"] = quantile(values, 0.5)
    return out


def slug(target: Target) -> str:
    """A file name for ``target``'s databases (its settings included)."""
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", str(target)).strip("_")


# --- one target -------------------------------------------------------------------------


def profile_pass(
    path: Path,
    specs: Sequence[Any],
    backend: Any,
    target: Target,
    fingerprint: Fingerprint,
    settings: ProtocolSettings,
    *,
    shuffle_seed: int = 0,
) -> tuple[list[Measurement], float, int]:
    """Profile ``specs`` into ``path`` (resumable); rows of this plan, seconds, failures."""
    start = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    with MeasurementDB(path) as db:
        total = len(specs)
        done = [len(db.measured_keys(target.key, fingerprint.key) & {s.key for s in specs})]

        live = sys.stdout.isatty()  # a log (a lent machine's output) gets no progress line

        def progress(n: int, label: str) -> None:
            done[0] += n
            if live:
                print(f"\r    {done[0]}/{total} {label[:56]:56s}", end="", flush=True)

        result = run_profile(
            specs,
            backend,
            target,
            fingerprint,
            db,
            settings,
            chunk_size=8,
            progress=progress,
            shuffle_seed=shuffle_seed,
        )
        if live:
            print(flush=True)
        rows = db.measurements(target_key=target.key, fingerprint_key=fingerprint.key)
    keys = {s.key for s in specs}
    return [m for m in rows if m.spec.key in keys], time.perf_counter() - start, len(result.failed)


def bench_target(
    name: str,
    plan: Plan,
    data: Path,
    settings: ProtocolSettings,
    predictors: Sequence[str],
    *,
    registry: Registry,
    over_budget: Callable[[float], bool],
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """The figures of one target (or why it was skipped); ``save`` is called with what
    there is after every pass, so a run killed later keeps it."""
    try:
        backend, target = registry.resolve(Target.parse(name))
    except (TargetUnavailableError, ConfigError) as exc:
        print(f"skipped {name}: {exc}")
        return {"target": name, "skipped": str(exc)}
    fingerprint = collect(backend.fingerprint_extras())
    specs = plan.specs()
    encoders = sum(isinstance(s, EncoderSpec) for s in specs)
    print(f"\n== {target} on {fingerprint.summary()}")
    print(f"   plan {plan.name}: {len(specs)} specs ({encoders} encoders), profiled {PASSES} times")
    result: dict[str, Any] = {"target": str(target), "fingerprint": fingerprint.to_dict(), "passes": []}
    passes: list[list[Measurement]] = []
    for i in range(PASSES):
        expected_s = result["passes"][-1]["elapsed_s"] if result["passes"] else 0.0
        if over_budget(expected_s):
            result["stopped"] = f"time budget spent before pass {i + 1}"
            print(f"   stopped: {result['stopped']}")
            break
        path = data / f"{slug(target)}-pass{i + 1}.db"
        try:
            # Each pass in its own order: a spec's neighbours in a chunk differ between them.
            rows, elapsed_s, failed = profile_pass(
                path, specs, backend, target, fingerprint, settings, shuffle_seed=i
            )
        except LatbenchError as exc:  # the backend cannot run this target after all
            print(f"\n   stopped: {exc}")
            result["stopped"] = str(exc)
            break
        passes.append(rows)
        result["passes"].append({"measured": len(rows), "failed": failed, "elapsed_s": elapsed_s})
        print(f"   pass {i + 1}: {len(rows)} specs in {elapsed_s:.0f} s ({failed} failed)")
        save(result)
    if not passes or not passes[0]:
        return result
    first = passes[0]
    figures: dict[str, Callable[[], Any]] = {
        "sample_spread": lambda: sample_spread(first),
        "build": lambda: build_times(first),
        "additivity": lambda: [{k: v.to_dict() for k, v in additivity(rows).items()} for rows in passes],
    }
    if len(passes) == PASSES:
        figures["noise_floor"] = lambda: pass_noise_floor(first, passes[1])
        figures["predictors"] = lambda: predictor_accuracy(first, passes[1], predictors)
    for key, figure in figures.items():
        try:
            result[key] = figure()
        except ValueError as exc:  # e.g. a predictor's negative prediction: keep the others
            result[key] = {"error": str(exc)}
    print_target(result)
    return result


def print_target(r: dict[str, Any]) -> None:
    def failed(section: str, key: str) -> bool:
        value = r.get(key)
        if isinstance(value, dict) and set(value) == {"error"}:
            print(f"   {section}: not computed: {value['error']}")
            return True
        return key not in r

    if not failed("(a) sample spread", "sample_spread"):
        print("   (a) sample spread within a measurement (pass 1; median | p90 over specs)")
        for kind, s in r["sample_spread"].items():
            print(
                f"       {kind:8s} n={s['n']:4d}  CoV {s['cov_median_pct']:5.2f}% | {s['cov_p90_pct']:5.2f}%"
                f"   IQR/median {s['iqr_median_pct']:5.2f}% | {s['iqr_p90_pct']:5.2f}%"
                f"   unstable {s['unstable']}"
            )
    if not failed("(b) noise floor", "noise_floor"):
        print("   (b) noise floor, pass 1 against pass 2")
        for kind, f in r["noise_floor"].items():
            print(
                f"       {kind:8s} n={f['n']:4d}  median {f['median_pct']:5.2f}%  p90 {f['p90_pct']:5.2f}%"
                f"  ±10%: {f['within_10pct'] * 100:5.1f}%"
            )
    if not failed("(c) additivity", "additivity"):
        print("   (c) additivity: the sum of an encoder's parts against the encoder (pass 1 | pass 2)")
        labels = {"isolated": "blocks alone", "model": "blocks in model context", "operators": "operators"}
        for parts, label in labels.items():
            gaps = [g[parts] for g in r["additivity"] if parts in g]
            if gaps:
                within = " | ".join(f"{g['within_10pct'] * 100:5.1f}%" for g in gaps)
                bias = " | ".join(f"{g['median_error_pct']:+6.1f}%" for g in gaps)
                print(f"       {label:24s} ±10%: {within}   median error {bias}   n={gaps[0]['n']}")
    if not failed("(d) predictors", "predictors"):
        for split, s in r["predictors"].items():
            print_split(split, s)
    if not failed("(e) build", "build"):
        b = r["build"]
        extra = "".join(
            f", {k.removesuffix('_median_s')} {v:.3f} s"
            for k, v in b.items()
            if k.endswith("_median_s") and k != "build_median_s"
        )
        print(
            f"   (e) build per spec: median {b['build_median_s']:.3f} s, max {b['build_max_s']:.2f} s{extra}"
        )


def print_split(split: str, s: dict[str, Any]) -> None:
    if "error" in s:
        print(f"   (d) {split} split: {s['error']}")
        return
    floor = s["noise_floor"]
    floor_text = (
        f"noise floor median {floor['median_pct']:.2f}%, ±10%: {floor['within_10pct'] * 100:.1f}%"
        if floor
        else "no noise floor"
    )
    folds = f"{s['folds']}-fold, " if s["folds"] > 1 else ""
    print(f"   (d) {split} split ({folds}{s['test']} held-out encoders; {floor_text})")
    for name, p in s["predictors"].items():
        if "error" in p:
            print(f"       {name:10s} not fitted: {p['error']}")
            continue
        a = p["accuracy"]
        bar = "meets" if a["within_10pct"] >= NNLQP_WITHIN_10PCT else "below"
        print(
            f"       {name:10s} ±10%: {a['within_10pct'] * 100:5.1f}% ({bar} NNLQP's 99.9%)"
            f"  MAPE {a['mape_pct']:5.2f}%  τ {a['kendall_tau']:.3f}  bias {a['median_error_pct']:+.1f}%"
        )


# --- main --------------------------------------------------------------------------------


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (JSON has neither: a
    Kendall τ of constant values, an IQR ratio of a zero median)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(finite(report), indent=1, allow_nan=False))
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None, *, registry: Registry | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--target",
        action="append",
        help=f"a target to benchmark; repeat for several [{', '.join(GPU_TARGETS)}]",
    )
    parser.add_argument("--plan", default="quick", help="built-in plan or a .toml plan file [quick]")
    parser.add_argument("--encoders", type=int, help="encoders in the plan instead of its own count")
    parser.add_argument("--samples", type=int, default=64, help="samples per spec [64]")
    parser.add_argument(
        "--predictors", default="lut-block,lut-op,xgboost", help="comma-separated [lut-block,lut-op,xgboost]"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=0.0,
        help="start no pass that would end after this many seconds, going by the target's last pass "
        "(0: no limit)",
    )
    parser.add_argument("--data", default=".latbench-bench/targets", help="folder of the resumable databases")
    parser.add_argument("--json", default="benchmarks/results/targets.json", help="figures as JSON")
    args = parser.parse_args(argv)
    try:
        plan = load_plan(args.plan)
        if args.encoders is not None:
            plan = dataclasses.replace(plan, encoders=args.encoders)
        settings = ProtocolSettings(samples=args.samples, min_samples=min(16, args.samples))
        predictors = [p for p in args.predictors.split(",") if p]
        unknown = [p for p in predictors if p not in predictor_registry.EVALUATED]
        if unknown or not predictors:
            raise ConfigError(
                f"unknown predictor(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(predictor_registry.EVALUATED)}"
            )
        if args.budget_s < 0:
            raise ConfigError("--budget-s must be >= 0")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    registry = registry or default_registry()
    start = time.perf_counter()

    def over_budget(next_pass_s: float) -> bool:
        """Whether a pass expected to take ``next_pass_s`` would end past the budget."""
        return bool(args.budget_s) and time.perf_counter() - start + next_pass_s > args.budget_s

    data, out = Path(args.data), Path(args.json)
    report: dict[str, Any] = {
        "plan": plan.name,
        "encoders": plan.encoders,
        "samples": args.samples,
        "targets": [],
    }
    for name in args.target or GPU_TARGETS:
        report["targets"].append({"target": name})

        def save(result: dict[str, Any]) -> None:
            report["targets"][-1] = result
            report["elapsed_s"] = time.perf_counter() - start
            write_json(out, report)

        save(
            bench_target(
                name, plan, data, settings, predictors, registry=registry, over_budget=over_budget, save=save
            )
        )
    ran = sum(bool(t.get("passes")) for t in report["targets"])
    print(f"\n{ran} of {len(report['targets'])} targets measured in {report['elapsed_s']:.0f} s; wrote {out}")
    if not ran:
        print("error: no target was measured (see the reasons above)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
