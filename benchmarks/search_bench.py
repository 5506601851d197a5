"""Search benchmark: hypervolume against trials for the GP, TPE, NSGA-II and random samplers.

    .venv/bin/python benchmarks/search_bench.py [--only SECTION,...] [--seeds 3] [--json FILE]

Sections (everything is written under ``--data``, default ``.latbench-bench/search``, and
reused by a rerun):

* **predictor**: the cost model every run shares: the quick plan profiled on
  onnxruntime-cpu (~90 s, once) and a ``lut-block`` predictor fitted on it (batch 1,
  sequence 128).
* **surrogate**: each sampler over ``--seeds`` seeds on the inexpensive accuracy surrogate
  (``latbench.search.objectives.SurrogateAccuracy``), ``--trials`` trials each (Optuna's GP: ``--gp-trials``,
  since its model costs seconds per trial and it only has to beat random early), on a per-layer
  space within the quick plan's range (hidden 128-384, 2-6 layers, 4 or 8 heads and FFN
  ratio 2-4 per layer: 5.6 million students). One fixed reference point for every run:
  accuracy 0.5 (the surrogate's floor) and 1.1x the predicted latency of the largest
  student. ``--noise`` sets the standard deviation of the surrogate's evaluation noise
  (0.003 by default; 0 makes it deterministic, with its studies in another file).
  Printed: median hypervolume (and its range over seeds) at 10/20/30/60/90
  trials, its ratio to random's at equal trials, the trials each sampler needs to reach
  95% of the best hypervolume any run found, and the trials the default sampler (``gp``)
  and Optuna's GP need to reach random's 90-trial hypervolume; twice: for the accuracies
  the search saw (noise included: a sampler that evaluates more distinct students near
  the front collects more lucky draws) and for the same students' noise-free accuracy
  (what the user gets). ``gp`` is also run 30 trials with a random startup, to show what
  the predictor's startup design buys.
* **proxy**: the real objective at a small budget: proxy distillation (150 steps on 2,000
  examples) of students of the built-in demo teacher (72 students: 1-4 layers, hidden
  64-128, 2 or 4 heads, FFN ratio 1-4), GP against random, 12 trials each over
  ``--seeds`` seeds (each with its own distillation seed), latency from a lut-block
  predictor fitted on the ``demo`` plan (which covers these students); then the GP seed-0
  run's Pareto set measured on onnxruntime-cpu side by side, printed beside its predicted
  latencies.

The surrogate section times nothing; the predictor and proxy sections time the CPU, so run
the benchmark alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from latbench.arch import Workload
from latbench.search.objectives import MeasuredLatency, PredictedLatency, ProxyDistillation, SurrogateAccuracy
from latbench.search.space import DEMO, SearchSpace
from latbench.search.study import SearchSettings, finish, hypervolume, run_search

SECTIONS = ("predictor", "surrogate", "proxy")
WORKLOAD = Workload(1, 128)
SPACE = SearchSpace(
    name="bench-per-layer",
    layers=(2, 3, 4, 5, 6),
    hidden=(128, 192, 256, 320, 384),
    heads=(4, 8),
    ffn_ratios=(2.0, 2.5, 3.0, 3.5, 4.0),
    per_layer=True,
)
# students of the demo teacher (4 layers, hidden 128, 4 heads, FFN 512)
DEMO_SPACE = DEMO
# (sampler, startup, trials): "all" runs --trials, "gp" --gp-trials (Optuna's GP costs
# seconds per trial), "short" 30 (only to show what the predictor's startup design buys)
RUNS = (
    ("gp", "predictor", "all"),
    ("gp", "sampler", "short"),
    ("optuna-gp", "predictor", "gp"),
    ("tpe", "predictor", "all"),
    ("nsga2", "predictor", "all"),
    ("random", "predictor", "all"),
)
CHECKPOINTS = (10, 20, 30, 60, 90)


def log(message: str) -> None:
    print(message, flush=True)


def predictor_file(data: Path, plan: str = "quick") -> Path:
    """``plan`` profiled on onnxruntime-cpu (once) and a ``lut-block`` predictor fitted on it."""
    from latbench.cli import main

    prefix = "" if plan == "quick" else f"{plan}-"  # quick.db + lut-block.json, demo.db + demo-lut-block.json
    db, path = data / f"{plan}.db", data / f"{prefix}lut-block.json"
    if not path.is_file():
        start = time.perf_counter()
        code = main(["profile", "--target", "onnxruntime-cpu", "--plan", plan, "--db", str(db)])
        if code:
            raise SystemExit(f"profiling failed ({code})")
        code = main(["fit", "--db", str(db), "--target", "onnxruntime-cpu", "--predictor", "lut-block",
                     "--out", str(path)])  # fmt: skip
        if code:
            raise SystemExit(f"fitting failed ({code})")
        log(f"profiled the {plan} plan and fitted lut-block in {time.perf_counter() - start:.0f} s")
    return path


def surrogate(data: Path, seeds: int, trials: int, gp_trials: int, noise: float = 0.003) -> dict[str, Any]:
    latency = PredictedLatency(predictor_file(data), WORKLOAD)
    largest = SPACE.from_indices([n - 1 for n in SPACE.choice_counts])
    reference = (0.5, 1.1 * latency.estimate([largest])[0].ms)
    log(
        f"space {SPACE.name}: {SPACE.count():,} students; "
        f"reference point {reference[0]}, {reference[1]:.3f} ms"
    )
    db = "surrogate.db" if noise == 0.003 else f"surrogate-noise-{noise:g}.db"
    curves: dict[str, list[list[float]]] = {}
    true_curves: dict[str, list[list[float]]] = {}
    for sampler, startup, length in RUNS:
        name = sampler if startup == "predictor" or sampler == "random" else f"{sampler} (random startup)"
        runs_to = {"all": trials, "gp": gp_trials, "short": min(30, trials)}[length]
        for seed in range(seeds):
            settings = SearchSettings(
                trials=runs_to,
                sampler=sampler,
                seed=seed,
                startup=startup,
                reference_accuracy=reference[0],
                reference_latency_ms=reference[1],
            )
            start = time.perf_counter()
            outcome = run_search(
                settings,
                SPACE,
                SurrogateAccuracy(seed=seed, noise=noise),
                latency,
                storage=f"sqlite:///{data / db}",
                study_name=f"{name}-{seed}",
            )
            curve = per_evaluated(outcome)
            curves.setdefault(name, []).append(curve)
            true_curves.setdefault(name, []).append(
                per_evaluated(outcome, SurrogateAccuracy(seed, noise=0.0))
            )
            log(
                f"  {name:<24} seed {seed}: HV {curve[-1]:.4f} after {runs_to} trials "
                f"({time.perf_counter() - start:.0f} s)"
            )
    log("\nhypervolume of the accuracies the search saw (the surrogate's noise included)")
    rows = table(curves, trials)
    log("\nhypervolume of the same students' true (noise-free) accuracy: what the user gets")
    true_rows = table(true_curves, trials)
    return {"reference": reference, "observed": rows, "true": true_rows}


def table(curves: dict[str, list[list[float]]], trials: int) -> dict[str, Any]:
    """Print median hypervolume at the checkpoints, ratios to random, trials to 95% (and, since
    the reference point makes 95% easy, 99%) of the best, and the trials the GP samplers need
    to reach random's 90-trial median."""
    best = max(c[-1] for runs in curves.values() for c in runs)
    rows: dict[str, Any] = {"best": best}
    random_curves = curves["random"]
    checkpoints = [n for n in CHECKPOINTS if n <= trials]
    log("median hypervolume [min-max over seeds] and ratio to random's median, at N trials")
    log(f"{'sampler':<20}" + "".join(f"{n:>34}" for n in checkpoints) + f"{'N to 95% / 99% of best':>26}")
    for name, runs in curves.items():
        cells, ratios = [], {}
        for n in checkpoints:
            if n > min(len(c) for c in runs):
                cells.append("")
                continue
            values = [c[n - 1] for c in runs]
            ref = statistics.median(c[n - 1] for c in random_curves)
            ratios[n] = statistics.median(values) / ref if ref else float("nan")
            cells.append(
                f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}] {ratios[n]:.3f}x"
            )
        reach = {
            share: [next((i + 1 for i, v in enumerate(c) if v >= share * best), None) for c in runs]
            for share in (0.95, 0.99)
        }
        text = " / ".join(",".join("-" if r is None else str(r) for r in reach[share]) for share in reach)
        log(f"{name:<20}" + "".join(f"{c:>34}" for c in cells) + f"{text:>26}")
        rows[name] = {"ratios": ratios, "reach_95": reach[0.95], "reach_99": reach[0.99], "curves": runs}
    if trials >= 90:
        target = statistics.median(c[89] for c in random_curves)
        for name in ("gp", "optuna-gp"):
            reach_random = [next((i + 1 for i, v in enumerate(c) if v >= target), None) for c in curves[name]]
            log(
                f"random's median 90-trial hypervolume {target:.4f} is reached by {name} after {reach_random}"
            )
            rows[f"{name}_reaches_random_90"] = reach_random
    return rows


def per_evaluated(outcome, truth: SurrogateAccuracy | None = None) -> list[float]:  # type: ignore[no-untyped-def]
    """Hypervolume after each *evaluated* trial (trials the predictor rejected cost nothing);
    with ``truth``, of the students' accuracy under it instead of what the search saw."""
    if truth is None:
        return [
            hv for record, hv in zip(outcome.trials, outcome.hypervolume, strict=True) if record.evaluated
        ]
    out, points = [], []
    for record in outcome.trials:
        if record.evaluated:
            if record.feasible:
                points.append((truth.accuracy(record.arch), record.latency_ms))
            out.append(hypervolume(points, outcome.reference))
    return out


def proxy(data: Path, trials: int, seeds: int) -> dict[str, Any]:
    from latbench.distill.demo_task import write_demo_task
    from latbench.distill.settings import DistillConfig, LossWeights

    files = write_demo_task(data.parent / "distill" / "task")
    latency = PredictedLatency(predictor_file(data, "demo"), WORKLOAD)
    config = DistillConfig(
        steps=150, max_examples=2000, learning_rate=5e-4, losses=LossWeights(logits=1.0, hidden=1.0),
        dropout=0.0, checkpoint_every=0,
    )  # fmt: skip
    # one distillation seed per search seed: the proxy's own noise is part of the objective
    objectives = [
        ProxyDistillation(files.teacher, files.train, files.dev, replace(config, seed=seed))
        for seed in range(seeds)
    ]
    largest = DEMO_SPACE.from_indices([n - 1 for n in DEMO_SPACE.choice_counts])
    reference = (0.5, 1.1 * latency.estimate([largest])[0].ms)
    count = DEMO_SPACE.count()
    log(f"space {DEMO_SPACE.name}: {count} students; reference {reference[0]}, {reference[1]:.3f} ms")
    results: dict[str, Any] = {"reference": reference}
    gp_outcome = None
    for sampler in ("gp", "random"):
        for seed in range(seeds):
            settings = SearchSettings(
                trials=trials, sampler=sampler, startup_trials=5, seed=seed,
                reference_accuracy=reference[0], reference_latency_ms=reference[1],
            )  # fmt: skip
            start = time.perf_counter()
            outcome = run_search(
                settings, DEMO_SPACE, objectives[seed], latency,
                storage=f"sqlite:///{data / 'proxy.db'}", study_name=f"{sampler}-{seed}-{trials}",
            )  # fmt: skip
            curve = per_evaluated(outcome)
            early = curve[min(5, len(curve) - 1)]
            log(f"  {sampler:<7} seed {seed}: HV {curve[-1]:.4f} after {trials} trials "
                f"({time.perf_counter() - start:.0f} s); at 6 trials {early:.4f}")  # fmt: skip
            results.setdefault(sampler, []).append(curve)
            if sampler == "gp" and seed == 0:
                gp_outcome = outcome
    for n in (6, trials):
        gp = statistics.median(c[n - 1] for c in results["gp"])
        rnd = statistics.median(c[n - 1] for c in results["random"])
        log(f"median HV after {n} trials: gp {gp:.4f}, random {rnd:.4f} ({gp / rnd:.3f}x)")
    assert gp_outcome is not None
    measured = MeasuredLatency("onnxruntime-cpu:threads=1", WORKLOAD)
    final = finish(gp_outcome, measured=measured)
    log("GP seed 0's Pareto set: predicted vs measured latency on onnxruntime-cpu (batch 1, seq 128)")
    log(f"{'student':<22}{'acc':>7}{'predicted ms (90%)':>26}{'measured ms (IQR)':>22}{'error':>8}")
    rows = []
    for m in final.pareto:
        t, lat = m.trial, m.final_latency
        assert lat is not None and t.predicted_ms is not None
        error = t.predicted_ms / lat.ms - 1
        log(f"{t.arch.short_label:<22}{t.accuracy:>7.3f}"
            f"{f'{t.predicted_ms:.3f} [{t.predicted_low_ms:.3f}-{t.predicted_high_ms:.3f}]':>26}"
            f"{f'{lat.ms:.3f} ({lat.iqr_ms:.3f})':>22}{error:>+8.1%}")  # fmt: skip
        rows.append({"arch": t.arch.to_dict(), "accuracy": t.accuracy, "predicted_ms": t.predicted_ms,
                     "measured_ms": lat.ms, "measured_iqr_ms": lat.iqr_ms})  # fmt: skip
    results["pareto"] = rows
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=".latbench-bench/search", help="working folder")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections among {', '.join(SECTIONS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=90)
    parser.add_argument(
        "--gp-trials", type=int, default=40, help="trials of the GP runs (each costs seconds of fitting) [40]"
    )
    parser.add_argument("--proxy-trials", type=int, default=12)
    parser.add_argument(
        "--noise", type=float, default=0.003,
        help="standard deviation of the surrogate's evaluation noise (0: a deterministic surrogate) [0.003]",
    )  # fmt: skip
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument(
        "--table", help="print the surrogate tables again from a --json file of an earlier run"
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}")
    if args.table:
        saved = json.loads(Path(args.table).read_text(encoding="utf-8"))["surrogate"]
        for key, title in (("observed", "the search saw"), ("true", "true (noise-free)")):
            log(f"\nhypervolume of the accuracies {title}")
            table({k: v["curves"] for k, v in saved[key].items() if isinstance(v, dict)}, args.trials)
        return 0
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {}
    if "predictor" in sections:
        figures["predictor"] = str(predictor_file(data))
    if "surrogate" in sections:
        figures["surrogate"] = surrogate(data, args.seeds, args.trials, args.gp_trials, args.noise)
    if "proxy" in sections:
        figures["proxy"] = proxy(data, args.proxy_trials, args.seeds)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
