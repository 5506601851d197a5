"""Predictor benchmark: published architectures, learning curve, few-shot transfer, speed.

    .venv/bin/python benchmarks/predictor_bench.py [--data DIR] [--only SECTION,...] [--json FILE]

Every section measures what it needs into resumable databases under ``--data``
(default ``.latbench-bench/``; rerunning skips what is already there) and prints its
figures beside the noise floor of the same encoders measured again. The held-out
evaluation on the standard plan itself is ``latbench evaluate`` (see the README).

* **published** (needs the standard plan profiled into ``DIR/standard.db``: ``latbench
  profile --target onnxruntime-cpu --plan standard --db DIR/standard.db``, about an hour
  here): the models of ``latbench.published`` (BERT-base, the 24 Turc et al. (2019)
  miniatures, DistilBERT, TinyBERT, MiniLM, RoBERTa, ELECTRA), each built by
  ``transformers`` from its config, exported as users deploy it and measured as
  ``latbench measure --hf-model`` measures it, at batch 1, sequence 128, in two passes
  minutes apart (the noise floor); every predictor fitted on the whole standard database
  predicts them from their architecture.
* **learning-curve**: a plan of the quick plan's layer shapes with 260 encoders of 2-12
  layers; every predictor is fitted on 10, 20, 50, 100 and 200 of the first 200 encoders
  (three random draws each) and scored on the last 60.
* **transfer**: the same encoders measured on torch-cpu (a new target); predictors
  fitted on onnxruntime-cpu are adapted with 10, 20 and 50 torch-cpu encoders and
  compared with predictors fitted from scratch on the same encoders.
* **speed**: architectures per second of every predictor fitted on the standard (or
  learning-curve) database, for a population of 100,000 sampled architectures.

Run it alone: anything else on the machine is noise in these figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from latbench.arch import Workload
from latbench.backends.registry import default_registry
from latbench.db import MeasurementDB
from latbench.fingerprint import collect
from latbench.measurement import Measurement
from latbench.plans import QUICK, STANDARD, Plan, ProfileSpace
from latbench.predictors import registry
from latbench.predictors.base import ExtrapolationWarning, LatencyPredictor
from latbench.predictors.batch import EncoderBatch
from latbench.predictors.evaluation import encoders_and_table
from latbench.predictors.io import save_predictor
from latbench.predictors.metrics import accuracy, noise_floor
from latbench.predictors.table import LatencyTable
from latbench.profile import measure_specs, run_profile
from latbench.published import PublishedModel
from latbench.published import published as published_models
from latbench.specs import EncoderSpec
from latbench.target import Target
from latbench.timing import ProtocolSettings

SECTIONS = ("published", "learning-curve", "transfer", "speed")
ORT = "onnxruntime-cpu"
TORCH = "torch-cpu"
LC_SIZES = (10, 20, 50, 100, 200)
LC_POOL, LC_TEST = 200, 60
FEW_SHOT = (10, 20, 50)
TRANSFER_ENCODERS, TRANSFER_TEST = 90, 40
DRAWS = 3
SPEED_POPULATION = 100_000


# --- measuring -------------------------------------------------------------------------
def lc_plan() -> Plan:
    s = QUICK.space
    space = ProfileSpace(
        hidden=s.hidden, heads=s.heads, ffn_ratios=s.ffn_ratios, seq_lens=s.seq_lens, layers=(2, 12)
    )
    return Plan(name="learning-curve", space=space, contexts=("model",), encoders=LC_POOL + LC_TEST, seed=11)


def backend_for(name: str):  # type: ignore[no-untyped-def]
    backend = default_registry().get_available(name)
    target = backend.normalize(Target.parse(name))
    return backend, target, collect(backend.fingerprint_extras())


def profile_into(path: Path, specs: Sequence, target_name: str) -> list[Measurement]:  # type: ignore[type-arg]
    backend, target, fingerprint = backend_for(target_name)
    with MeasurementDB(path) as db:
        todo = len(specs) - len(db.measured_keys(target.key, fingerprint.key) & {s.key for s in specs})
        if todo:
            print(f"  measuring {todo} specs on {target} into {path} (resumable)…", flush=True)
            run_profile(specs, backend, target, fingerprint, db, chunk_size=4, progress=_dots(len(specs)))
            print()
        rows = db.measurements(target_key=target.key, fingerprint_key=fingerprint.key)
    keys = {s.key for s in specs}
    return [m for m in rows if m.spec.key in keys]


def remeasure(encoders: Sequence[Measurement], target_name: str) -> list[Measurement]:
    """A second, independent measurement of ``encoders`` (the noise floor)."""
    backend, target, fingerprint = backend_for(target_name)
    print(f"  re-measuring {len(encoders)} encoders for the noise floor…", flush=True)
    out: list[Measurement] = []
    specs = [m.spec for m in encoders]
    for i in range(0, len(specs), 4):
        out += measure_specs(backend, target, fingerprint, specs[i : i + 4])
    return out


def _dots(total: int):  # type: ignore[no-untyped-def]
    done = [0]

    def progress(n: int, label: str) -> None:
        done[0] += n
        print(f"\r  {done[0]}/{total} {label[:60]:60s}", end="", flush=True)

    return progress


def floor_of(first: Sequence[Measurement], second: Sequence[Measurement]) -> str:
    again = {m.spec.key: m.latency_s for m in second}
    pairs = [(m.latency_s, again[m.spec.key]) for m in first if m.spec.key in again]
    a, b = (np.array(v) for v in zip(*pairs, strict=True))
    return noise_floor(a, b).format()


def fit(name: str, train: Sequence[Measurement], table: LatencyTable | None, **params) -> LatencyPredictor:  # type: ignore[no-untyped-def]
    return registry.create(name, **params).fit(
        [m.spec for m in train], np.array([m.latency_s for m in train]), table=table
    )


def predict_quietly(predictor: LatencyPredictor, X) -> np.ndarray:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        return predictor.predict(X)


# --- sections --------------------------------------------------------------------------
#: Which of ``latbench.published``'s models the published section measures (all when None),
#: and how many samples each takes per pass.
PUBLISHED_MODELS: str | None = None
PUBLISHED_SAMPLES = 64
PUBLISHED_TARGET = "onnxruntime-cpu:threads=1"


def measure_published(
    path: Path, models: Sequence[PublishedModel], workload: Workload
) -> dict[str, Measurement]:
    """Each model built by ``transformers`` from its config (random weights, fixed seed),
    exported as users deploy it and timed as ``latbench measure --hf-model`` times it
    (``user_models.measure_onnx``), stored as a model row in ``path`` (resumable)."""
    import torch
    import transformers

    from latbench.specs import ModelSpec
    from latbench.user_models import export_hf_model, measure_onnx, model_digest

    backend, target = default_registry().resolve(Target.parse(PUBLISHED_TARGET))
    fingerprint = collect(backend.fingerprint_extras())
    settings = ProtocolSettings.with_samples(PUBLISHED_SAMPLES)
    out: dict[str, Measurement] = {}
    with MeasurementDB(path) as db:
        have = {
            m.spec.key: m for m in db.measurements(target_key=target.key, fingerprint_key=fingerprint.key)
        }
        for i, model in enumerate(models):
            config = model.hf_config()
            digest = model_digest(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
            spec = ModelSpec(model.name, digest, workload, "hf", model.arch())
            if spec.key not in have:
                print(f"\r  {i + 1}/{len(models)} {model.name:24s}", end="", flush=True)
                torch.manual_seed(0)
                hf = transformers.AutoModel.from_config(config).eval()
                exported = export_hf_model(hf, workload.batch, workload.seq_len)
                result = measure_onnx(
                    exported, PUBLISHED_TARGET, batch=workload.batch, seq=workload.seq_len,
                    settings=settings, what=model.name,
                )  # fmt: skip
                have[spec.key] = result.to_measurement(spec, fingerprint)
                db.add([have[spec.key]])
            out[model.name] = have[spec.key]
    print(f"\r  {len(models)} models in {path}{' ' * 30}")
    return out


def published(data: Path) -> dict:  # type: ignore[type-arg]
    standard_db = data / "standard.db"
    if not standard_db.exists():
        print(f"  skipped: {standard_db} missing; profile the standard plan into it first")
        return {}
    _, target, fingerprint = backend_for(ORT)
    with MeasurementDB(standard_db, create=False) as db:
        rows = db.measurements(target_key=target.key, fingerprint_key=fingerprint.key)
    if not rows:
        print(f"  skipped: {standard_db} has no measurements of {target} on this machine in this graph form")
        return {}
    encoders, table = encoders_and_table(rows)
    workload = Workload(1, 128)
    models = published_models(PUBLISHED_MODELS)
    print(f"  {len(models)} published models exported from transformers, b=1 s=128, measured in two passes")
    first = measure_published(data / "published.db", models, workload)
    again = measure_published(data / "published-again.db", models, workload)  # minutes after the first
    truth = np.array([first[m.name].latency_s for m in models])
    print(f"  noise floor (pass 1 against pass 2): {floor_of(list(first.values()), list(again.values()))}")
    specs = [EncoderSpec(m.arch(), workload) for m in models]
    result: dict = {  # type: ignore[type-arg]
        "models": [m.name for m in models],
        "measured_ms": (truth * 1e3).tolist(),
        "again_ms": [again[m.name].latency_s * 1e3 for m in models],
        "predictors": {},
    }
    for name in registry.EVALUATED:
        predictor = fit(name, encoders, table)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            detail = predictor.predict_detail(specs)
        acc = accuracy(detail.latency_s, truth)
        outside = int(detail.extrapolated.sum())
        print(f"  {name:10s} {acc.format()} ({outside} outside the table)")
        result["predictors"][name] = {
            "accuracy": acc.to_dict(),
            "predicted_ms": (detail.latency_s * 1e3).tolist(),
            "outside": [list(o) for o in detail.outside],
        }
    best = result["predictors"]["lut-block"]["predicted_ms"]
    print(f"  {'model':18s} {'measured ms':>11s} {'again ms':>9s} {'lut-block':>9s} {'error':>7s}")
    for model, t, t2, p in zip(models, truth * 1e3, result["again_ms"], best, strict=True):
        print(f"  {model.name:18s} {t:11.2f} {t2:9.2f} {p:9.2f} {100 * (p / t - 1):+6.1f}%")
    return result


def learning_curve(data: Path) -> dict:  # type: ignore[type-arg]
    rows = profile_into(data / "lc-ort.db", lc_plan().specs(), ORT)
    encoders, table = encoders_and_table(rows)
    order = [m for m in encoders]
    random.Random(0).shuffle(order)
    pool, test = order[:LC_POOL], order[LC_POOL : LC_POOL + LC_TEST]
    again = remeasure(test, ORT)
    print(f"  {len(pool)} training pool, {len(test)} held out; noise floor: {floor_of(test, again)}")
    truth = np.array([m.latency_s for m in test])
    X_test = [m.spec for m in test]
    result: dict = {}  # type: ignore[type-arg]
    print(f"  {'predictor':10s} " + " ".join(f"{f'n={n}':>13s}" for n in LC_SIZES) + "   (within ±10%, MAPE)")
    for name in registry.EVALUATED:
        cells, result[name] = [], {}
        for n in LC_SIZES:
            within, mape = [], []
            for draw in range(DRAWS if n < LC_POOL else 1):
                train = random.Random(draw).sample(pool, n)
                try:
                    acc = accuracy(predict_quietly(fit(name, train, table), X_test), truth)
                except ValueError as exc:
                    print(f"  {name}: n={n}: {exc}")
                    continue
                within.append(acc.within_10pct)
                mape.append(acc.mape_pct)
            if within:
                result[name][n] = {
                    "within_10pct": statistics.median(within),
                    "mape_pct": statistics.median(mape),
                }
                cells.append(f"{100 * statistics.median(within):5.1f}% {statistics.median(mape):5.1f}%")
            else:
                cells.append(f"{'-':>13s}")
        print(f"  {name:10s} " + " ".join(f"{c:>13s}" for c in cells))
    return result


def transfer(data: Path) -> dict:  # type: ignore[type-arg]
    ort_rows = profile_into(data / "lc-ort.db", lc_plan().specs(), ORT)
    ort_encoders, ort_table = encoders_and_table(ort_rows)
    specs = [s for s in lc_plan().specs() if isinstance(s, EncoderSpec)][:TRANSFER_ENCODERS]
    torch_rows = profile_into(data / "lc-torch.db", specs, TORCH)
    order = list(torch_rows)
    random.Random(0).shuffle(order)
    pool, test = order[:-TRANSFER_TEST], order[-TRANSFER_TEST:]
    again = remeasure(test, TORCH)
    floor = floor_of(test, again)
    print(f"  {TORCH}: {len(pool)} encoders to draw from, {len(test)} held out; noise floor: {floor}")
    sources = {}
    for name in ("lut-block", "xgboost"):
        path = data / f"source-{name}.json"
        _, target, fingerprint = backend_for(ORT)
        save_predictor(
            fit(name, ort_encoders, ort_table), path, target=target, fingerprint=fingerprint, training={}
        )
        sources[f"transfer({name})"] = path
    truth = np.array([m.latency_s for m in test])
    X_test = [m.spec for m in test]
    methods = [*sources, "flops", "hat-mlp", "xgboost", "roofline"]
    print(f"  {'method':20s} " + " ".join(f"{f'n={n}':>13s}" for n in FEW_SHOT) + "   (within ±10%, MAPE)")
    result: dict = {}  # type: ignore[type-arg]
    for method in methods:
        cells, result[method] = [], {}
        for n in FEW_SHOT:
            within, mape = [], []
            for draw in range(DRAWS):
                train = random.Random(draw).sample(pool, n)
                if method in sources:
                    predictor = fit("transfer", train, None, source=str(sources[method]))
                else:
                    predictor = fit(method, train, None)  # from scratch: no table on the new target
                acc = accuracy(predict_quietly(predictor, X_test), truth)
                within.append(acc.within_10pct)
                mape.append(acc.mape_pct)
            result[method][n] = {
                "within_10pct": statistics.median(within),
                "mape_pct": statistics.median(mape),
            }
            cells.append(f"{100 * statistics.median(within):5.1f}% {statistics.median(mape):5.1f}%")
        print(f"  {method:20s} " + " ".join(f"{c:>13s}" for c in cells))
    return result


def speed(data: Path) -> dict:  # type: ignore[type-arg]
    db_path, space = data / "standard.db", STANDARD.space
    if not db_path.exists():
        db_path, space = data / "lc-ort.db", lc_plan().space
    _, target, fingerprint = backend_for(ORT)
    with MeasurementDB(db_path, create=False) as db:
        rows = db.measurements(target_key=target.key, fingerprint_key=fingerprint.key)
    encoders, table = encoders_and_table(rows)
    rng = random.Random(0)
    n = SPEED_POPULATION
    t0 = time.perf_counter()
    archs = [space.sample_arch(rng) for _ in range(n)]
    workload = Workload(1, 128)
    t1 = time.perf_counter()
    batch = EncoderBatch.from_archs(archs, workload)
    t2 = time.perf_counter()
    specs = [EncoderSpec(a, workload) for a in archs[:10_000]]  # the same, one object each
    print(
        f"  {n} architectures from {db_path.stem}'s space (b=1, s=128): sampling {n / (t1 - t0):,.0f}/s, "
        f"EncoderBatch.from_archs {n / (t2 - t1):,.0f}/s"
    )
    print(f"  {'predictor':10s} {'archs/s (batch)':>16s} {'spread':>8s} {'archs/s (10k specs)':>20s}")
    result: dict = {}  # type: ignore[type-arg]
    for name in registry.EVALUATED:
        predictor = fit(name, encoders, table)
        predict_quietly(predictor, EncoderBatch.from_archs(archs[:100], workload))  # warm caches
        times = []
        for _ in range(5):
            start = time.perf_counter()
            predict_quietly(predictor, batch)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        predict_quietly(predictor, specs)
        from_specs = len(specs) / (time.perf_counter() - start)
        rate = n / statistics.median(times)
        spread = (max(times) - min(times)) / statistics.median(times)
        print(f"  {name:10s} {rate:16,.0f} {100 * spread:7.0f}% {from_specs:20,.0f}")
        result[name] = {"archs_per_s": rate, "spread": spread, "from_specs_per_s": from_specs}
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=".latbench-bench", help="folder of the benchmark's databases")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    chosen = args.only.split(",")
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    print(f"machine: {collect().summary()}")
    figures = {}
    for section in SECTIONS:
        if section in chosen:
            print(f"\n== {section} ==", flush=True)
            figures[section] = {
                "published": published,
                "learning-curve": learning_curve,
                "transfer": transfer,
                "speed": speed,
            }[section](data)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
