"""``latbench fit``, ``latbench evaluate`` and ``latbench predict``: a predictor fitted on a
database, every predictor scored beside the noise floor, one encoder predicted."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from latbench.cli.common import db_option
from latbench.cli.measure import add_workload_options
from latbench.errors import ConfigError


def register_fit(sub: Any) -> None:
    p = sub.add_parser(
        "fit",
        help="fit a latency predictor on a database's measurements",
        description="Fit a predictor on the measurements of one target (and one machine fingerprint) "
        "in a database. Predictors: lut-block and lut-op (lookup tables of the measured blocks or "
        "operators, calibrated on the encoders), xgboost (trees correcting the lookup table, with a "
        "quantile interval), roofline (peak compute and bandwidth from a spec sheet: --device; with "
        "no --db it predicts for a target nobody has profiled), transfer (a predictor file of another "
        "target, --source, adapted with this target's few encoders), and the baselines flops, "
        "hat-mlp and nnmeter-rf. Saved as JSON with the target, fingerprint and a summary of the "
        "training data.",
    )
    p.add_argument("--db", default=None, help="SQLite path or PostgreSQL URL [$LATBENCH_DB or latbench.db]")
    p.add_argument("--target", required=True, help="the profiled target, e.g. onnxruntime-cpu")
    p.add_argument(
        "--predictor", required=True, help="lut-block, lut-op, xgboost, roofline, transfer, flops, ..."
    )
    p.add_argument("--fingerprint", help="machine fingerprint key (prefix) when the database holds several")
    p.add_argument(
        "--device", help="roofline/xgboost: spec sheet name (see `latbench specsheets`) or auto [auto]"
    )
    p.add_argument("--source", help="transfer: predictor file fitted on another target")
    p.add_argument("--out", required=True, help="predictor file to write (.json)")
    p.set_defaults(run=cmd_fit)


def register_evaluate(sub: Any) -> None:
    from latbench.predictors.settings import SPLIT_CHOICES, EvaluationSettings

    default = EvaluationSettings()
    p = sub.add_parser(
        "evaluate",
        help="score every predictor on held-out encoders, beside the noise floor",
        description="Fit every predictor on part of a database's encoders and score it on the rest, "
        "with a random split (interpolation) and a split that holds out the largest hidden sizes "
        "(extrapolation). The noise floor (two independent measurements of the held-out encoders) is "
        "shown beside: re-measured now when the target runs here on the same machine, or read from a "
        "second database of the same plan (--noise-db). Writes evaluation.json and parity PNGs to --out.",
    )
    db_option(p, "SQLite path or PostgreSQL URL")
    p.add_argument("--target", required=True, help="the profiled target")
    p.add_argument("--fingerprint", help="machine fingerprint key (prefix) when the database holds several")
    p.add_argument("--split", choices=SPLIT_CHOICES, default=default.split, help=f"[{default.split}]")
    p.add_argument(
        "--test-share",
        type=float,
        default=default.test_share,
        help=f"share of encoders held out (hidden split; --folds 1) [{default.test_share}]",
    )
    p.add_argument(
        "--folds",
        type=int,
        default=default.folds,
        help="random split: k-fold cross-validation, every encoder held out once; 1 holds out "
        f"--test-share once [{default.folds}]",
    )
    p.add_argument(
        "--seed", type=int, default=default.seed, help=f"seed of the random split [{default.seed}]"
    )
    p.add_argument("--predictors", help="comma-separated predictors to score [all]")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("--noise-db", help="a second database with the same encoders measured again")
    noise.add_argument("--no-noise-floor", action="store_true", help="skip the noise floor (not recommended)")
    p.add_argument("--out", default="latbench-evaluation", help="folder for evaluation.json and PNGs")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_evaluate)


def register_predict(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="predict one encoder's latency with a fitted predictor",
        description="Predict the latency of an encoder with a predictor file from `latbench fit`, "
        "saying when the encoder lies outside what was measured.",
    )
    p.add_argument("--predictor", required=True, help="predictor file from `latbench fit`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--arch", help="architecture JSON or a path to one")
    src.add_argument("--hf-config", help="a Hugging Face config.json or its folder")
    add_workload_options(p)
    p.add_argument("--target", help="warn unless the predictor was fitted on this target")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_predict)


PARSERS = {"fit": register_fit, "evaluate": register_evaluate, "predict": register_predict}


def cmd_fit(args: argparse.Namespace) -> int:
    from latbench.predictors.fitting import fit_from_database

    params = {"device": args.device, "source": args.source}
    fitted = fit_from_database(
        args.predictor, args.target, args.db, fingerprint=args.fingerprint, params=params
    )
    fitted.save(args.out)
    where = (
        f"{fitted.target} ({fitted.fingerprint.summary()})"
        if fitted.fingerprint
        else f"{fitted.target} (spec sheet only)"
    )
    training = fitted.training
    print(
        f"fitted {args.predictor} for {where} on {training['encoders']} encoders, "
        f"{training['blocks']} blocks, {training['ops']} operators → {args.out}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from latbench import __version__
    from latbench.db import MeasurementDB, choose_fingerprint, redact_url
    from latbench.predictors import registry
    from latbench.predictors.evaluation import (
        EvaluationSettings,
        evaluation_document,
        make_splits,
        pooled_test,
        score_splits,
    )
    from latbench.predictors.fitting import normalized_target, remeasure
    from latbench.predictors.settings import EVALUATION_FILE
    from latbench.reports.parity import parity_plot

    settings = EvaluationSettings(
        split=args.split,
        folds=args.folds,
        test_share=args.test_share,
        seed=args.seed,
        predictors=tuple(args.predictors.split(",")) if args.predictors else registry.EVALUATED,
    )
    target = normalized_target(args.target)
    with MeasurementDB(args.db, create=False) as db:
        fingerprint = choose_fingerprint(db, target, args.fingerprint)
        rows = db.measurements(target_key=target.key, fingerprint_key=fingerprint.key)
    splits = make_splits(rows, settings)
    tests = [m for folds in splits for m in pooled_test(folds)]
    second = []
    if args.noise_db:
        with MeasurementDB(args.noise_db, create=False) as db:
            second = db.measurements(target_key=target.key, fingerprint_key=fingerprint.key, kind="encoder")
    elif not args.no_noise_floor:

        def announce(n: int) -> None:
            print(f"re-measuring {n} held-out encoders for the noise floor…", file=sys.stderr)

        second = remeasure(target, fingerprint, tests, announce)
    results = score_splits(splits, settings.predictors, second)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for r in results:
        floor_text = r.floor.format() if r.floor else "noise floor: not measured"
        parity_plot(
            [m.latency_ms for m in r.test],
            {s.predictor: [v * 1e3 for v in s.predicted_s] for s in r.scored if s.accuracy},
            out / f"parity-{r.name}.png",
            title=f"{target}\n{r.name} split: {len(r.test)} held-out encoders"
            + (f" ({len(r.folds)}-fold)" if len(r.folds) > 1 else ""),
            noise_floor_text=floor_text,
        )
        if not args.json:
            how = f"{len(r.folds)}-fold, " if len(r.folds) > 1 else ""
            sizes = f"{how}trained on {len(r.folds[0].train)} encoders, tested on {len(r.test)}"
            print(f"{r.name} split: {sizes}; {floor_text}")
            for s in r.scored:
                line = s.accuracy.format() if s.accuracy else f"not fitted: {s.error}"
                extra = f" ({s.extrapolated} extrapolated)" if s.extrapolated else ""
                print(f"  {s.predictor:10s} {line}{extra}")
    provenance = {"db": redact_url(args.db), "command": ["latbench", *args.argv], "latbench": __version__}
    report = evaluation_document(
        results, settings, target=str(target), fingerprint=fingerprint.to_dict(), provenance=provenance
    )
    path = out / EVALUATION_FILE
    path.write_text(json.dumps(report, indent=1, default=lambda v: None if v != v else v))
    if args.json:
        print(json.dumps(report, indent=1, default=float))
    else:
        print(f"wrote {path} and parity plots to {out}/")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import warnings

    from latbench.arch import Arch, Workload
    from latbench.fingerprint import collect
    from latbench.predictors.base import INTERVAL_COVERAGE
    from latbench.predictors.fitting import normalized_target
    from latbench.predictors.io import load_predictor
    from latbench.predictors.table import ExtrapolationError
    from latbench.specs import EncoderSpec

    arch = Arch.from_json(args.arch) if args.arch else Arch.from_hf_config(args.hf_config)
    spec = EncoderSpec(arch, Workload(args.batch, args.seq, args.precision))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target = normalized_target(args.target) if args.target else None
        loaded = load_predictor(args.predictor, target=target, fingerprint=collect() if target else None)
        try:
            detail = loaded.predictor.predict_detail([spec])
        except ExtrapolationError as exc:
            raise ConfigError(str(exc)) from None
    for warning in caught:
        print(f"latbench: warning: {warning.message}", file=sys.stderr)
    latency_ms = float(detail.latency_s[0]) * 1e3
    interval_ms = (
        [float(detail.low_s[0]) * 1e3, float(detail.high_s[0]) * 1e3]
        if detail.low_s is not None and detail.high_s is not None
        else None
    )
    result = {
        "predictor": loaded.predictor.name,
        "target": str(loaded.target),
        "fingerprint": loaded.fingerprint.key if loaded.fingerprint else None,
        "arch": arch.to_dict(),
        "workload": spec.workload.to_dict(),
        "latency_ms": latency_ms,
        "interval_ms": interval_ms,
        "interval_coverage": INTERVAL_COVERAGE if interval_ms else None,
        "outside_table": list(detail.outside[0]),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{spec.label}: {latency_ms:.3f} ms predicted by {loaded.predictor.name} for {loaded.target}")
    if interval_ms:
        print(f"  {INTERVAL_COVERAGE:.0%} interval: {interval_ms[0]:.3f} – {interval_ms[1]:.3f} ms")
    else:
        print("  no interval: the predictor was fitted on too few encoders to calibrate one")
    if detail.outside[0]:
        print(f"  outside the measured table: {', '.join(detail.outside[0])} (extrapolated)")
    return 0
