"""The ``latbench`` command: a thin layer that parses arguments, wires the packages
together and turns user mistakes (``LatbenchError``) into one-line errors and exit code 2.

Commands: ``devices``, ``profile``, ``measure``, ``fit``, ``evaluate``, ``predict``,
``specsheets``, ``export``, ``distill``, ``demo-task``, ``search``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from latbench import __version__
from latbench.errors import ConfigError, LatbenchError

DEFAULT_DB = "latbench.db"


def _db_default() -> str:
    return os.environ.get("LATBENCH_DB", DEFAULT_DB)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latbench",
        description="Hardware-aware latency modeling and benchmarking for transformer encoders.",
        epilog="Run `latbench COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"latbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "devices",
        help="list the targets and whether each can run here",
        description="List every target with whether it is available here (and why not), "
        "its default settings, and this machine's fingerprint.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

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
    p.add_argument(
        "--db", default=_db_default(), help="SQLite path or SQLAlchemy URL [$LATBENCH_DB or latbench.db]"
    )
    p.add_argument("--chunk", type=int, default=8, help="specs measured together, interleaved [8]")
    p.add_argument(
        "--samples", type=int, default=64, help="samples per spec (fewer only for slow specs) [64]"
    )
    p.add_argument(
        "--limit", type=int, default=0, help="measure at most this many specs of the plan (0: all)"
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be measured and exit")

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
    p.add_argument("--batch", type=int, default=1, help="batch size [1]")
    p.add_argument("--seq", type=int, default=128, help="sequence length [128]")
    p.add_argument("--precision", default="fp32", help="fp32, bf16... as the target supports [fp32]")
    p.add_argument("--samples", type=int, default=64, help="samples [64]")
    p.add_argument("--db", default=None, help="also store the measurement in this database")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

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

    p = sub.add_parser(
        "specsheets",
        help="list the device spec sheets the roofline predictor knows",
        description="Peak compute per precision and memory bandwidth of the CPUs, GPUs and TPUs shipped "
        "with latbench (with their sources), and this machine's estimate (auto).",
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser(
        "evaluate",
        help="score every predictor on held-out encoders, beside the noise floor",
        description="Fit every predictor on part of a database's encoders and score it on the rest, "
        "with a random split (interpolation) and a split that holds out the largest hidden sizes "
        "(extrapolation). The noise floor (two independent measurements of the held-out encoders) is "
        "shown beside: re-measured now when the target runs here on the same machine, or read from a "
        "second database of the same plan (--noise-db). Writes evaluation.json and parity PNGs to --out.",
    )
    p.add_argument("--db", default=_db_default(), help="SQLite path or PostgreSQL URL")
    p.add_argument("--target", required=True, help="the profiled target")
    p.add_argument("--fingerprint", help="machine fingerprint key (prefix) when the database holds several")
    p.add_argument("--split", choices=("random", "hidden", "both"), default="both", help="[both]")
    p.add_argument(
        "--test-share",
        type=float,
        default=0.3,
        help="share of encoders held out (hidden split; --folds 1) [0.3]",
    )
    p.add_argument(
        "--folds",
        type=int,
        default=5,
        help="random split: k-fold cross-validation, every encoder held out once; 1 holds out "
        "--test-share once [5]",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random split [0]")
    p.add_argument("--predictors", help="comma-separated predictors to score [all]")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("--noise-db", help="a second database with the same encoders measured again")
    noise.add_argument("--no-noise-floor", action="store_true", help="skip the noise floor (not recommended)")
    p.add_argument("--out", default="latbench-evaluation", help="folder for evaluation.json and PNGs")
    p.add_argument("--json", action="store_true", help="print JSON")

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
    p.add_argument("--batch", type=int, default=1, help="batch size [1]")
    p.add_argument("--seq", type=int, default=128, help="sequence length [128]")
    p.add_argument("--precision", default="fp32", help="precision [fp32]")
    p.add_argument("--target", help="warn unless the predictor was fitted on this target")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser(
        "export",
        help="export a measurement database to CSV or Parquet",
        description="Write one row per measurement (statistics, raw samples, target, fingerprint).",
    )
    p.add_argument("--db", default=_db_default(), help="SQLite path or SQLAlchemy URL")
    p.add_argument("--out", required=True, help="output file (.csv or .parquet)")
    p.add_argument("--format", choices=("csv", "parquet"), default=None, help="default: from --out's suffix")

    p = sub.add_parser(
        "distill",
        help="distil a student architecture from a teacher classifier",
        description="Train a student of architecture --arch from a local Hugging Face BERT "
        "sequence classifier (--teacher) on --data, with knowledge-distillation losses, a teacher-"
        "extracted initialisation (ETD) and a resumable state; then evaluate accuracy, F1, MCC and "
        "loyalty to the teacher, and save the student (Hugging Face layout where possible, ONNX "
        "always, plus an INT8 ONNX variant). Rerunning the same command resumes.",
        epilog="Data: .jsonl, .csv/.tsv (GLUE layout with a header), a folder of split files "
        "(train.tsv, dev.tsv) or a Hugging Face dataset saved with save_to_disk. "
        "Try it on the built-in task: `latbench demo-task --out demo` then "
        "`latbench distill --teacher demo/teacher --data demo/train.jsonl --dev demo/dev.jsonl "
        '--arch \'{"layers": 2, "hidden": 128, "heads": 2, "ffn": 256}\' --proxy --out student`.',
    )
    _add_teacher_and_data(p, required=True)
    p.add_argument(
        "--arch",
        required=True,
        help="student architecture JSON or a path to one, e.g. "
        '\'{"layers": 4, "hidden": 256, "heads": 4, "ffn": 1024}\'',
    )
    p.add_argument("--out", required=True, help="output folder (student/, student.onnx, metrics.json)")
    p.add_argument("--proxy", action="store_true", help="short proxy run: 300 steps on 2,000 examples")
    p.add_argument("--steps", type=int, default=0, help="training steps [from --epochs]")
    p.add_argument("--epochs", type=float, default=3.0, help="epochs when --steps is not given [3]")
    p.add_argument("--batch-size", type=int, default=32, help="examples per step [32]")
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate [3e-4]")
    p.add_argument(
        "--temperature", type=float, default=2.0, help="softmax temperature of the logits loss [2]"
    )
    p.add_argument(
        "--losses",
        default="logits=1,hidden=1",
        help="loss weights among logits, hidden, attention, relations, labels [logits=1,hidden=1]",
    )
    p.add_argument(
        "--layer-map",
        default="uniform",
        help="teacher layer for each student layer: uniform, last, or a list such as 2,4,6 [uniform]",
    )
    p.add_argument(
        "--init",
        choices=("etd", "random"),
        default="etd",
        help="student weights: extracted from the teacher by importance (etd) or random [etd]",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed [0]")
    p.add_argument(
        "--eval-every", type=int, default=0, help="evaluate on the dev set every N steps [end only]"
    )
    p.add_argument("--no-int8", action="store_true", help="skip the INT8 variant")
    p.add_argument("--json", action="store_true", help="print metrics.json instead of a summary")

    p = sub.add_parser(
        "search",
        help="predictor-guided multi-objective architecture search (accuracy vs latency)",
        description="Search a student space for the accuracy-latency Pareto front: a Bayesian "
        "sampler (Optuna) proposes students, a latency predictor (from `latbench fit`) prices "
        "them (students predicted over --budget-ms are rejected without training; those whose "
        "interval straddles it are measured on --target), a short proxy distillation from "
        "--teacher scores their accuracy, and the Pareto set is then fully distilled and "
        "measured. The study lives in --storage (SQLite in --out by default): rerunning the "
        "same command resumes it, and workers on several machines share one PostgreSQL study "
        "(--storage postgresql://... --study NAME).",
        epilog="Settings may also come from a TOML file (--config) whose keys are the long "
        "option names with underscores (space, teacher, data, predictor, budget_ms, sampler, "
        "trials, ...); options given on the command line win. Results: OUT/search.json and "
        "OUT/trials.csv (see latbench/search/study.py), students of the Pareto set in OUT/pareto-NNNN/.",
    )
    p.add_argument("--config", help="TOML file with any of the options below")
    p.add_argument("--space", help="search space: autodistil-tiny, autodistil-small, autodistil-base, "
                   "hat, bert-mini, demo (the demo teacher's students), or a TOML/YAML file")  # fmt: skip
    _add_teacher_and_data(p, required=False)  # they may come from --config
    p.add_argument("--predictor", help="latency predictor file from `latbench fit`")
    p.add_argument("--target", help="measure on this target (available here) the students whose "
                   "interval straddles the budget and the Pareto set [the predictor's target when "
                   "available here]")  # fmt: skip
    p.add_argument("--no-measure", action="store_true", default=None, help="never measure; predictions only")
    p.add_argument("--batch", type=int, help="workload batch size [1]")
    p.add_argument("--seq", type=int, help="workload sequence length [128]")
    p.add_argument("--budget-ms", type=float, help="latency budget in ms (a constraint) [none]")
    p.add_argument(
        "--sampler",
        choices=("gp", "optuna-gp", "tpe", "nsga2", "random"),
        help="gp: a GP on accuracy proposing, among thousands of students whose latency the predictor "
        "gives, the one of largest expected hypervolume improvement; optuna-gp: Optuna's GP on both "
        "objectives; tpe: for many workers; nsga2; random: the baseline [gp]",
    )
    p.add_argument("--trials", type=int, help="students to evaluate (over-budget ones are free) [30]")
    p.add_argument("--reference-accuracy", type=float, help="the hypervolume's reference accuracy: fronts "
                   "are compared on what they gain above it (e.g. the majority-class rate); a study "
                   "keeps it, so give the same value when resuming [0]")  # fmt: skip
    p.add_argument("--reference-ms", type=float, help="the hypervolume's reference latency in ms [the "
                   "budget, else 1.1x the predicted latency of the space's largest student]")  # fmt: skip
    p.add_argument("--seed", type=int, help="random seed [0]")
    p.add_argument(
        "--startup",
        choices=("predictor", "sampler"),
        help="first trials spread over predicted latency, or the sampler's [predictor]",
    )
    p.add_argument("--startup-trials", type=int, help="trials before the sampler's model takes over [8]")
    p.add_argument("--storage", help="Optuna storage URL [sqlite:///OUT/study.db]")
    p.add_argument("--study", help="study name (workers sharing one study use the same) [search]")
    p.add_argument("--heartbeat-s", type=int, help="a running trial's heartbeat period; one silent "
                   "for four periods is failed and retried by another worker [30]")  # fmt: skip
    p.add_argument("--workers", type=int, help="worker processes on this machine sharing the study "
                   "(the cores are shared out among them; a measurement waits until no search on this "
                   "machine trains); extra workers log to OUT/worker-K.log [1]")  # fmt: skip
    p.add_argument("--worker", type=int, metavar="K", help="run as extra worker K of a shared study: "
                   "evaluate trials until the study holds --trials, then exit without the Pareto set's "
                   "distillation or results (one worker without --worker does those). K varies the "
                   "sampler's seed, so give each worker its own (--workers N takes 1 to N-1)")  # fmt: skip
    p.add_argument("--out", help="output folder (search.json, trials.csv, Pareto students)")
    p.add_argument("--proxy-steps", type=int, help="steps of each proxy distillation [300]")
    p.add_argument("--proxy-examples", type=int, help="training examples of the proxy [2000]")
    p.add_argument("--final-epochs", type=float, help="epochs of the Pareto set's full distillation [3]")
    p.add_argument("--no-final", action="store_true", default=None, help="skip the full distillation")
    p.add_argument("--surrogate", action="store_true", default=None,
                   help="score students with the built-in accuracy surrogate instead of distillation "
                   "(no teacher or data; for trying settings and benchmarking samplers)")  # fmt: skip

    p = sub.add_parser(
        "report",
        help="turn search results and predictor evaluations into an HTML report with PNGs",
        description="Write OUT/report.html (self-contained: images embedded, no network needed) and "
        "the same figures as PNGs beside it, from a search result (`latbench search`'s search.json or "
        "its folder) and/or a predictor evaluation (`latbench evaluate`'s evaluation.json): the "
        "accuracy-latency front with every trial, the teacher, the budget and the Pareto set at "
        "predicted and measured latency; hypervolume against trials (beside --baseline searches); "
        "the Pareto students' per-operator latency breakdown and table; each predictor's parity plot "
        "and accuracy beside the noise floor; and the provenance of every number.",
    )
    p.add_argument("results", nargs="+", help="search.json and/or evaluation.json (or their folders)")
    p.add_argument("--out", required=True, help="output folder (report.html and PNGs)")
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        help="another search with the same reference point (e.g. --sampler random) to compare "
        "hypervolume with; may be repeated",
    )
    p.add_argument("--title", help="the page's title [from the results]")

    p = sub.add_parser(
        "demo",
        help="the whole pipeline on built-in defaults, ending in a report (about 8 minutes on 2 cores)",
        description="Run every stage of latbench on the built-in demo: write the demo task and train its "
        "teacher, profile the onnxruntime-cpu target with the demo plan (the teacher's student "
        "shapes), fit and evaluate the latency predictors, search the teacher's students with the GP "
        "sampler under a latency budget of half the teacher's predicted latency (and a random search "
        "as the baseline), fully distil and re-measure the Pareto set, and write the report. Each "
        "stage is the latbench command it prints, so any of them can be rerun on its own; rerunning "
        "the demo reuses what is done.",
    )
    p.add_argument("--out", default="latbench-demo", help="output folder [latbench-demo]")
    p.add_argument("--plan", default="demo", help="profile plan [demo]")
    p.add_argument("--trials", type=int, default=10, help="students the search distils [10]")
    p.add_argument("--proxy-steps", type=int, default=150, help="steps of each proxy distillation [150]")
    p.add_argument(
        "--final-epochs", type=float, default=1.0, help="epochs of the Pareto set's full distillation [1]"
    )
    p.add_argument(
        "--teacher-steps",
        type=int,
        default=None,
        help="teacher training steps [latbench.distill.demo_task default]",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the random-search baseline")
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        help="samples per spec when profiling (fewer: faster, noisier) [64]",
    )

    p = sub.add_parser(
        "demo-task",
        help="write the built-in demo task and train its demo teacher",
        description="Generate the demo text-classification task (stacked negation, fixed "
        "seed; see latbench/distill/demo_task.py) as train.jsonl and dev.jsonl, and train the built-in demo "
        "teacher (a 4-layer BERT) into OUT/teacher. Reuses what is already there.",
    )
    p.add_argument("--out", default="latbench-demo", help="output folder [latbench-demo]")
    p.add_argument(
        "--teacher-steps",
        type=int,
        default=None,
        help="teacher training steps [latbench.distill.demo_task default]",
    )
    return parser


def _add_teacher_and_data(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument(
        "--teacher",
        required=required,
        help="folder of the teacher: a Hugging Face BERT, ELECTRA, RoBERTa or DistilBERT "
        "sequence classifier (config.json, weights, tokenizer) or a latbench student",
    )
    p.add_argument("--data", required=required, help="training data (file or folder)")
    p.add_argument("--dev", help="development data [the folder's dev split, else 10%% of --data]")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in results' provenance
    # kill/SIGTERM ends a profile as Ctrl-C does: committed chunks stay, claims are released.
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return COMMANDS[args.command](args)
    except LatbenchError as exc:
        print(f"latbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `latbench ... | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # an unreadable input, an unwritable output, a full disk
        where = f": {exc.filename}" if exc.filename else ""
        print(f"latbench: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except MemoryError:
        print(
            "latbench: error: out of memory; use a smaller --batch/--seq, architecture or plan",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(
            "latbench: interrupted; everything measured so far is saved, rerun to continue", file=sys.stderr
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    # soft_wrap: long lines are not broken at 80 columns when output is not a terminal
    return Console(soft_wrap=True)


def _positive(name: str, value: int) -> int:
    if value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value}")
    return value


def _resolve_target(text: str):  # type: ignore[no-untyped-def]
    from latbench.backends.registry import default_registry
    from latbench.target import Target

    return default_registry().resolve(Target.parse(text))


def _fingerprint(backend):  # type: ignore[no-untyped-def]
    from latbench.fingerprint import collect

    return collect(backend.fingerprint_extras())


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
    console = _console()
    console.print(table)
    console.print(f"fingerprint {fingerprint.key}: {fingerprint.summary()}")
    libs = ", ".join(f"{k} {v}" for k, v in fingerprint.libraries)
    console.print(f"libraries: {libs}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from latbench.plans import PlanSummary, load_plan
    from latbench.timing import ProtocolSettings

    _positive("--chunk", args.chunk)
    _positive("--samples", args.samples)
    if args.limit < 0:
        raise ConfigError("--limit must be >= 0")
    plan = load_plan(args.plan)
    backend, target = _resolve_target(args.target)
    specs = plan.specs()
    if args.limit:
        specs = specs[: args.limit]
    for spec in specs:
        backend.check_spec(spec)  # e.g. a precision the target cannot run: before any database
    console = _console()
    counts = ", ".join(f"{n} {kind}{'s' * (n != 1)}" for kind, n in PlanSummary.of(specs).counts.items())
    if args.dry_run:
        console.print(f"plan {plan.name}: {len(specs)} specs ({counts}) on {target}", markup=False)
        for spec in specs:
            console.print(f"  {spec.label}", markup=False)
        return 0

    from latbench.db import MeasurementDB
    from latbench.profile import run_profile

    settings = ProtocolSettings(samples=args.samples, min_samples=min(16, args.samples))
    fingerprint = _fingerprint(backend)
    with MeasurementDB(args.db) as db:
        todo = len(specs) - len({s.key for s in specs} & db.measured_keys(target.key, fingerprint.key))
        console.print(
            f"plan {plan.name}: {len(specs)} specs ({counts}) on {target}; {todo} to measure → {db.url}",
            markup=False,
        )
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("[bold]profiling"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=False,
            disable=todo == 0,
        ) as bar:
            task = bar.add_task("", total=todo)

            def progress(n: int, label: str) -> None:
                bar.update(task, advance=n, description=escape(label[:48]))  # labels hold [...]

            result = run_profile(
                specs, backend, target, fingerprint, db, settings, chunk_size=args.chunk, progress=progress
            )
    console.print(
        f"measured {result.measured} new specs in {result.elapsed_s:.0f} s "
        f"({result.already_measured} were already in the database; {result.unstable} flagged unstable)"
    )
    if result.failed:
        console.print(
            f"{len(result.failed)} specs could not be measured (a rerun retries them):", markup=False
        )
        for _, reason in result.failed[:10]:
            console.print(f"  {reason}", markup=False)
        return 1
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from latbench.arch import Arch, Workload
    from latbench.db import default_worker
    from latbench.profile import measure_specs
    from latbench.specs import EncoderSpec
    from latbench.timing import ProtocolSettings

    _positive("--samples", args.samples)
    arch = Arch.from_json(args.arch) if args.arch else Arch.from_hf_config(args.hf_config)
    spec = EncoderSpec(arch, Workload(args.batch, args.seq, args.precision))
    backend, target = _resolve_target(args.target)
    backend.check_spec(spec)
    fingerprint = _fingerprint(backend)
    db = None
    if args.db:
        from latbench.db import MeasurementDB

        db = MeasurementDB(args.db)  # opened first: a bad --db fails before any measuring
    try:
        settings = ProtocolSettings(samples=args.samples, min_samples=min(16, args.samples))
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
        "median_ms": st.median_s * 1e3,
        "p90_ms": st.p90_s * 1e3,
        "p99_ms": st.p99_s * 1e3,
        "iqr_ms": st.iqr_s * 1e3,
        "samples": st.n,
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
    console = _console()
    console.print(table)
    if m.kernels:
        kt = Table(title="kernels per inference (backend profiler)")
        for col in ("kernel", "count", "time (ms)"):
            kt.add_column(col, justify="right" if col != "kernel" else "left")
        for k in m.kernels:
            kt.add_row(k.op_type, str(k.count), f"{k.time_s * 1e3:.3f}")
        console.print(kt)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from latbench.db import MeasurementDB

    with MeasurementDB(args.db, create=False) as db:
        rows = db.export(args.out, args.format)
    print(f"wrote {rows} measurements to {args.out}")
    return 0


def _choose_fingerprint(db, target, wanted: str | None):  # type: ignore[no-untyped-def]
    from latbench.fingerprint import collect

    found = [(fp, n) for t, fp, n in db.targets() if t.key == target.key]
    if not found:
        raise ConfigError(
            f"the database has no measurements for target {target}; run `latbench profile` first"
        )
    if wanted:
        found = [(fp, n) for fp, n in found if fp.key.startswith(wanted)]
        if len(found) != 1:
            raise ConfigError(f"--fingerprint {wanted} matches {len(found)} machines for target {target}")
        return found[0][0]
    if len(found) == 1:
        return found[0][0]
    here = collect().key
    for fp, _ in found:
        if fp.key == here:
            return fp
    options = "; ".join(f"{fp.key} ({fp.summary()}, {n} rows)" for fp, n in found)
    raise ConfigError(
        f"target {target} was profiled on {len(found)} machines; pick one with --fingerprint: {options}"
    )


def cmd_fit(args: argparse.Namespace) -> int:
    import numpy as np

    from latbench.backends.registry import default_registry
    from latbench.db import MeasurementDB
    from latbench.predictors import registry
    from latbench.predictors.io import save_predictor
    from latbench.predictors.table import LatencyTable
    from latbench.target import Target

    if args.predictor not in registry.names():
        raise ConfigError(
            f"unknown predictor {args.predictor!r}; choose one of {', '.join(registry.names())}"
        )
    params = _predictor_params(args)
    target = Target.parse(args.target)
    sheet_only = args.predictor == "roofline" and args.db is None and not os.environ.get("LATBENCH_DB")
    if sheet_only:  # a target nobody has profiled: nothing to read, nothing to calibrate
        if target.name in default_registry():
            target = default_registry().create(target.name).normalize(target)
        fingerprint, rows = None, []
    else:
        target = default_registry().create(target.name).normalize(target)
        with MeasurementDB(args.db or _db_default(), create=False) as db:
            fingerprint = _choose_fingerprint(db, target, args.fingerprint)
            rows = db.measurements(target_key=target.key, fingerprint_key=fingerprint.key)
    encoders = [m for m in rows if m.spec.kind == "encoder"]
    parts = [m for m in rows if m.spec.kind != "encoder"]
    table = LatencyTable.from_measurements(parts) if parts else None
    try:
        predictor = registry.create(args.predictor, **params)
        predictor.fit([m.spec for m in encoders], np.array([m.median_s for m in encoders]), table=table)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot fit {args.predictor} on these measurements: {exc}") from None
    training = {"encoders": len(encoders), **(table.summary() if table else {"blocks": 0, "ops": 0})}
    save_predictor(predictor, args.out, target=target, fingerprint=fingerprint, training=training)
    where = f"{target} ({fingerprint.summary()})" if fingerprint else f"{target} (spec sheet only)"
    print(
        f"fitted {args.predictor} for {where} on {len(encoders)} encoders, "
        f"{training['blocks']} blocks, {training['ops']} operators → {args.out}"
    )
    return 0


def _predictor_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.device is not None:
        if args.predictor not in ("roofline", "xgboost"):
            raise ConfigError("--device applies to the roofline and xgboost predictors")
        params["device" if args.predictor == "roofline" else "roofline_device"] = args.device
    if args.source is not None:
        if args.predictor != "transfer":
            raise ConfigError("--source applies to the transfer predictor")
        params["source"] = args.source
    elif args.predictor == "transfer":
        raise ConfigError("the transfer predictor needs --source: a predictor file fitted on another target")
    return params


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


def _second_measurement(args, target, fingerprint, tests):  # type: ignore[no-untyped-def]
    """Another independent measurement of the held-out encoders, for the noise floor."""
    from latbench.db import MeasurementDB
    from latbench.fingerprint import collect
    from latbench.profile import measure_specs

    if args.no_noise_floor:
        return []
    if args.noise_db:
        with MeasurementDB(args.noise_db, create=False) as db:
            return db.measurements(target_key=target.key, fingerprint_key=fingerprint.key, kind="encoder")
    from latbench.backends.registry import default_registry

    backend = default_registry().create(target.name)
    here = collect(backend.fingerprint_extras())
    if not backend.availability().available or here.key != fingerprint.key:
        raise ConfigError(
            "the noise floor needs the held-out encoders measured twice: this machine cannot re-measure "
            f"them (target {target} measured on {fingerprint.summary()}); pass --noise-db with a second "
            "profile of the same plan, or --no-noise-floor"
        )
    specs = list({m.spec: None for m in tests})
    print(f"re-measuring {len(specs)} held-out encoders for the noise floor…", file=sys.stderr)
    return measure_specs(backend, target, here, specs)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from latbench.backends.registry import default_registry
    from latbench.db import MeasurementDB, redact_url
    from latbench.predictors import registry
    from latbench.predictors.evaluation import (
        evaluate,
        noise_floor_pairs,
        pooled_test,
        random_folds,
        split_measurements,
    )
    from latbench.predictors.metrics import noise_floor
    from latbench.reports.parity import parity_plot
    from latbench.target import Target

    target = Target.parse(args.target)
    target = default_registry().create(target.name).normalize(target)
    with MeasurementDB(args.db, create=False) as db:
        fingerprint = _choose_fingerprint(db, target, args.fingerprint)
        rows = db.measurements(target_key=target.key, fingerprint_key=fingerprint.key)
    names = ("random", "hidden") if args.split == "both" else (args.split,)
    predictors = tuple(args.predictors.split(",")) if args.predictors else registry.EVALUATED
    unknown = [p for p in predictors if p not in registry.EVALUATED]
    if unknown:
        raise ConfigError(
            f"unknown predictor(s) {', '.join(unknown)}; choose from {', '.join(registry.EVALUATED)}"
        )
    try:
        splits: list[list] = []  # type: ignore[type-arg]
        for n in names:
            if n == "random" and args.folds > 1:
                splits.append(random_folds(rows, args.folds, seed=args.seed))
            else:
                splits.append([split_measurements(rows, n, test_share=args.test_share, seed=args.seed)])
    except ValueError as exc:
        raise ConfigError(f"cannot evaluate: {exc}") from None
    second = _second_measurement(args, target, fingerprint, [m for sp in splits for m in pooled_test(sp)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {  # type: ignore[type-arg]
        "format": "latbench-evaluation",  # latbench.reports.results reads it
        "version": 1,
        "target": str(target),
        "fingerprint": fingerprint.to_dict(),
        "settings": {
            "split": args.split,
            "folds": args.folds,
            "test_share": args.test_share,
            "seed": args.seed,
            "db": redact_url(args.db),
        },
        "command": ["latbench", *args.argv],
        "latbench": __version__,
        "splits": {},
    }
    for folds in splits:
        name, test = folds[0].name, pooled_test(folds)
        scored = evaluate(folds, predictors)
        first, again = noise_floor_pairs(test, second)
        floor = noise_floor(first, again) if len(first) else None
        measured_ms = [m.median_s * 1e3 for m in test]
        report["splits"][name] = {
            "folds": len(folds),
            "train": len(folds[0].train),
            "test": len(test),
            "noise_floor": floor.to_dict() if floor else None,
            "predictors": {
                s.predictor: {
                    "accuracy": s.accuracy.to_dict() if s.accuracy else None,
                    "extrapolated": s.extrapolated,
                    "error": s.error,
                    "predicted_ms": [v * 1e3 for v in s.predicted_s],
                }
                for s in scored
            },
            "measured_ms": measured_ms,
            "test_labels": [m.spec.label for m in test],
        }
        floor_text = floor.format() if floor else "noise floor: not measured"
        parity_plot(
            measured_ms,
            {s.predictor: [v * 1e3 for v in s.predicted_s] for s in scored if s.accuracy},
            out / f"parity-{name}.png",
            title=f"{target}\n{name} split: {len(test)} held-out encoders"
            + (f" ({len(folds)}-fold)" if len(folds) > 1 else ""),
            noise_floor_text=floor_text,
        )
        if not args.json:
            how = f"{len(folds)}-fold, " if len(folds) > 1 else ""
            sizes = f"{how}trained on {len(folds[0].train)} encoders, tested on {len(test)}"
            print(f"{name} split: {sizes}; {floor_text}")
            for s in scored:
                line = s.accuracy.format() if s.accuracy else f"not fitted: {s.error}"
                extra = f" ({s.extrapolated} extrapolated)" if s.extrapolated else ""
                print(f"  {s.predictor:10s} {line}{extra}")
    path = out / "evaluation.json"
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
    from latbench.predictors.io import load_predictor
    from latbench.predictors.table import ExtrapolationError
    from latbench.specs import EncoderSpec
    from latbench.target import Target

    arch = Arch.from_json(args.arch) if args.arch else Arch.from_hf_config(args.hf_config)
    spec = EncoderSpec(arch, Workload(args.batch, args.seq, args.precision))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target = None
        if args.target:
            from latbench.backends.registry import default_registry

            target = Target.parse(args.target)
            target = default_registry().create(target.name).normalize(target)
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


def _training_bar(label: str):  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # On stderr, so that `--json` output on stdout stays machine-readable.
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True, soft_wrap=True),
    )


def _parse_layer_map(text: str) -> str | tuple[int, ...]:
    if text in ("uniform", "last"):
        return text
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--layer-map {text!r} is not uniform, last or a comma-separated list of teacher layers"
        ) from None


def cmd_distill(args: argparse.Namespace) -> int:
    from pathlib import Path

    from latbench.arch import Arch
    from latbench.distill.checkpoint import load_checkpoint
    from latbench.distill.pipeline import (
        METRICS_FILE,
        check_settings,
        distill_student,
        load_data,
        proxy_config,
    )
    from latbench.distill.trainer import DistillConfig, LossWeights

    arch = Arch.from_json(args.arch)
    config = DistillConfig(
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        temperature=args.temperature,
        losses=LossWeights.parse(args.losses),
        layer_map=_parse_layer_map(args.layer_map),
        init=args.init,
        seed=args.seed,
        eval_every=args.eval_every,
    )
    if args.proxy:
        config = proxy_config(config)
    # Everything that can be checked is checked before the first step.
    teacher = load_checkpoint(args.teacher)
    check_settings(teacher, arch, config)
    datasets = load_data(args.data, args.dev, teacher, 0.1, config.seed)
    console = _console()
    with _training_bar("distilling") as bar:
        task = bar.add_task("", total=None)

        def on_step(step: int, total: int, losses: dict[str, float]) -> None:
            bar.update(task, completed=step, total=total, description=f"loss {losses['loss']:.4f}")

        outcome = distill_student(
            args.teacher,
            args.data,
            arch,
            args.out,
            config,
            dev_path=args.dev,
            int8=not args.no_int8,
            on_step=on_step,
            teacher=teacher,
            datasets=datasets,
        )
    if args.json:
        print((Path(args.out) / METRICS_FILE).read_text(encoding="utf-8"), end="")
        return 0
    from rich.table import Table

    if not console.is_terminal:
        console.width = max(console.width, 110)  # the eight columns fit on one line in a log
    table = Table(
        title=f"student {arch.num_layers}L/{arch.hidden}H vs teacher "
        f"({outcome.student.examples} dev examples)"
    )
    for col in (
        "model",
        "params",
        "GFLOPs/sequence",
        "accuracy",
        "F1",
        "MCC",
        "label loyalty",
        "prob. loyalty",
    ):
        table.add_column(col)

    def row(name: str, q, params: int | None, flops: int | None) -> None:  # type: ignore[no-untyped-def]
        loyal = (
            (f"{q.label_loyalty:.3f}", f"{q.probability_loyalty:.3f}")
            if q.label_loyalty is not None
            else ("", "")
        )
        table.add_row(
            name,
            f"{params:,}" if params else "",
            f"{flops / 1e9:.2f}" if flops else "",
            f"{q.accuracy:.3f}",
            f"{q.f1:.3f}",
            f"{q.mcc:.3f}",
            *loyal,
        )

    row("teacher", outcome.teacher, outcome.teacher_params, outcome.teacher_flops)
    row("student", outcome.student, outcome.student_params, outcome.student_flops)
    if outcome.int8 is not None:
        row("student INT8", outcome.int8, None, None)
    console.print(table)
    resumed = f", resumed at step {outcome.resumed_from}" if outcome.resumed_from else ""
    console.print(
        f"{outcome.steps} steps in {outcome.train_seconds:.0f} s{resumed}; wrote {args.out}/: "
        + ", ".join(outcome.files),
        markup=False,
    )
    return 0


def cmd_demo_task(args: argparse.Namespace) -> int:
    from latbench.distill.demo_task import write_demo_task

    console = _console()
    kwargs = (
        {}
        if args.teacher_steps is None
        else {"teacher_steps": _positive("--teacher-steps", args.teacher_steps)}
    )
    with _training_bar("training the demo teacher") as bar:
        task = bar.add_task("", total=None)

        def on_step(step: int, total: int, losses: dict[str, float]) -> None:
            bar.update(task, completed=step, total=total, description=f"loss {losses['loss']:.4f}")

        files = write_demo_task(args.out, on_step=on_step, **kwargs)
    console.print(f"demo task: {files.train}, {files.dev}; teacher: {files.teacher}", markup=False)
    return 0


SEARCH_DEFAULTS: dict[str, Any] = {
    "config": None,
    "space": None,
    "teacher": None,
    "data": None,
    "dev": None,
    "predictor": None,
    "target": None,
    "no_measure": False,
    "batch": 1,
    "seq": 128,
    "budget_ms": None,
    "sampler": "gp",
    "trials": 30,
    "seed": 0,
    "reference_accuracy": 0.0,
    "reference_ms": None,
    "startup": "predictor",
    "startup_trials": 8,
    "storage": None,
    "study": "search",
    "heartbeat_s": 30,
    "workers": 1,
    "worker": 0,
    "out": None,
    "proxy_steps": 300,
    "proxy_examples": 2000,
    "final_epochs": 3.0,
    "no_final": False,
    "surrogate": False,
}


def search_options(args: argparse.Namespace) -> dict[str, Any]:
    """The search's options: command line over --config's TOML over the defaults."""
    options = dict(SEARCH_DEFAULTS)
    if args.config:
        from latbench.files import read_config_file

        data, _ = read_config_file(args.config, "search config", {})
        unknown = sorted(set(data) - set(SEARCH_DEFAULTS) - {"config"})
        if unknown:
            raise ConfigError(
                f"{args.config}: unknown search option(s) {', '.join(unknown)}; "
                f"known: {', '.join(k for k in SEARCH_DEFAULTS if k != 'config')}"
            )
        options.update(data)
    options.update({k: v for k, v in vars(args).items() if k in SEARCH_DEFAULTS and v is not None})
    missing = [f"--{k}" for k in ("space", "predictor", "out") if not options[k]]
    if not options["surrogate"]:
        missing += [f"--{k}" for k in ("teacher", "data") if not options[k]]
    if missing:
        raise ConfigError(f"latbench search needs {', '.join(missing)} (on the command line or in --config)")
    positive = ("batch", "seq", "trials", "startup_trials", "proxy_steps", "proxy_examples", "heartbeat_s")
    positive += ("workers",)
    for name in positive:
        if isinstance(options[name], bool) or not isinstance(options[name], int) or options[name] <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {options[name]!r}")
    worker = options["worker"]
    if isinstance(worker, bool) or not isinstance(worker, int) or worker < 0:
        raise ConfigError(f"worker must be a positive integer (an extra worker's number), got {worker!r}")
    if worker and options["workers"] > 1:
        raise ConfigError("--worker K runs one extra worker; it cannot start --workers of its own")
    return options


def cmd_search(args: argparse.Namespace) -> int:
    from pathlib import Path

    from latbench.arch import Workload
    from latbench.distill.trainer import DistillConfig
    from latbench.search.objectives import PredictedLatency, ProxyDistillation, SurrogateAccuracy
    from latbench.search.space import load_space
    from latbench.search.study import (
        SearchSettings,
        extremes,
        finish,
        load_outcome,
        open_study,
        run_search,
        write_results,
    )
    from latbench.search.workers import LocalWorkers, MachineLock, threads_per_worker, worker_command

    o = search_options(args)
    # Everything that can be checked is checked before the first trial.
    space = load_space(o["space"])
    settings = SearchSettings(
        trials=o["trials"],
        sampler=o["sampler"],
        seed=o["seed"],
        budget_ms=o["budget_ms"],
        startup=o["startup"],
        startup_trials=o["startup_trials"],
        reference_accuracy=o["reference_accuracy"],
        reference_latency_ms=o["reference_ms"],
    )
    workload = Workload(o["batch"], o["seq"])
    latency = PredictedLatency(o["predictor"], workload)
    measured = None if o["no_measure"] else _search_target(o["target"], latency, workload)
    out = Path(o["out"])
    storage = o["storage"] or f"sqlite:///{out.resolve() / 'study.db'}"
    console = _console()
    final = None
    if o["surrogate"]:
        objective: Any = SurrogateAccuracy(seed=o["seed"])
    else:
        proxy = DistillConfig(
            steps=o["proxy_steps"], max_examples=o["proxy_examples"], checkpoint_every=0, seed=o["seed"]
        )
        objective = ProxyDistillation(o["teacher"], o["data"], o["dev"], proxy)
        if not o["no_final"] and not o["worker"]:
            full = DistillConfig(epochs=float(o["final_epochs"]), seed=o["seed"])
            final = ProxyDistillation(o["teacher"], o["data"], o["dev"], full, int8=True)
    objective.check(extremes(space))
    out.mkdir(parents=True, exist_ok=True)
    workers, worker = o["workers"], o["worker"]
    lock = MachineLock.for_this_machine()
    if workers > 1:
        import torch

        torch.set_num_threads(threads_per_worker(workers))
    console.print(
        (f"worker {worker}: " if worker else "")
        + f"searching {space.name} ({space.count():,} students) with {settings.sampler}: "
        f"{settings.trials} trials, latency from {latency.loaded.predictor.name} for "
        f"{latency.loaded.target} at b={workload.batch} s={workload.seq_len}"
        + (f", budget {settings.budget_ms} ms" if settings.budget_ms else "")
        + (f", measuring on {measured.target}" if measured else "")
        + (f"; {workers} workers of {threads_per_worker(workers)} threads" if workers > 1 else ""),
        markup=False,
    )
    common = {"storage": storage, "study_name": o["study"], "measured": measured}
    common["heartbeat_s"] = o["heartbeat_s"]
    # The study (and its startup design) exists before any other worker starts, and a study
    # that exists with other settings is refused before the live display.
    open_study(settings, space, objective, latency, worker=worker, **common)
    helpers = contextlib.nullcontext(None)
    if workers > 1:
        commands = [worker_command(args.argv, k, storage, o["study"]) for k in range(1, workers)]
        helpers = LocalWorkers(commands, out, threads_per_worker(workers))
    with helpers as local, _training_bar("searching") as bar:
        task = bar.add_task("", total=settings.trials)

        def on_trial(record, records, hv: float) -> None:  # type: ignore[no-untyped-def]
            from latbench.search.study import pareto_front

            done = sum(r.evaluated for r in records)
            front = pareto_front(records)
            what = "over budget (predicted)" if record.skipped else f"acc {record.accuracy:.3f}"
            bar.update(
                task,
                completed=done,
                description=f"#{record.number} {record.arch.short_label} {what} "
                f"{record.latency_ms:.2f} ms | front {len(front)} | HV {hv:.4g}",
            )
            if any(m.number == record.number for m in front):  # the front so far, each time it moves
                steps = " · ".join(f"{m.latency_ms:.2f} ms {m.accuracy:.3f}" for m in front)
                label = record.arch.short_label
                bar.console.print(f"trial {record.number} ({label}) joins the front: {steps}", markup=False)
            for line in local.failures() if local is not None else ():
                print(f"latbench: warning: {line}", file=sys.stderr)

        outcome = run_search(
            settings, space, objective, latency, on_trial=on_trial, worker=worker, lock=lock, **common
        )
        if local is not None and local.running():
            bar.update(task, description=f"waiting for {local.running()} worker(s) to finish their trials")
        for line in local.wait() if local is not None else ():
            print(f"latbench: warning: {line}", file=sys.stderr)
    if worker:
        console.print(
            f"worker {worker}: the study holds {outcome.evaluated} evaluated students; the worker "
            "without --worker distils the Pareto set and writes the results",
            markup=False,
        )
        return 0
    if local is not None:  # the other workers' last trials included
        outcome = load_outcome(settings, storage=storage, study_name=o["study"])
    # the teacher on the students' axes, when it can run the workload they were priced at
    teacher = None if o["surrogate"] else objective.teacher.arch
    if teacher is not None and teacher.max_positions < workload.seq_len:
        teacher = None
    if final is None and measured is None:
        outcome = finish(outcome, teacher=teacher, latency=latency)
    else:
        with _training_bar("Pareto set") as bar:
            task = bar.add_task("", total=len(outcome.pareto))

            def on_member(i: int, n: int, record) -> None:  # type: ignore[no-untyped-def]
                bar.update(task, completed=i, description=f"distilling {record.arch.short_label}")

            outcome = finish(
                outcome,
                final=final,
                measured=measured,
                work_dir=out,
                on_member=on_member,
                teacher=teacher,
                latency=latency,
            )
            bar.update(task, completed=len(outcome.pareto))
    extra = {"command": ["latbench", *args.argv], "latbench": __version__, "libraries": _library_versions()}
    paths = write_results(outcome, out, extra=extra)
    _print_pareto(console, outcome)
    console.print(
        f"{outcome.evaluated} students evaluated, {sum(t.skipped for t in outcome.trials)} rejected by "
        f"the predictor; hypervolume {outcome.hypervolume[-1]:.4g} (reference {outcome.reference[0]:g}, "
        f"{outcome.reference[1]:.3f} ms); wrote " + ", ".join(str(p) for p in paths),
        markup=False,
    )
    return 0


def _library_versions() -> dict[str, str]:
    """Versions of what a search's numbers depend on (recorded in its results)."""
    import platform

    from latbench.fingerprint import library_versions

    names = ("torch", "onnxruntime", "optuna", "scikit-learn", "numpy", "xgboost", "tokenizers")
    return {"python": platform.python_version(), **dict(library_versions(names))}


def _search_target(text: str | None, latency, workload):  # type: ignore[no-untyped-def]
    """The target to measure on: --target, else the predictor's when available here."""
    from latbench.backends.registry import default_registry
    from latbench.search.objectives import MeasuredLatency

    if text:
        return MeasuredLatency(text, workload)
    name, registry = latency.loaded.target.name, default_registry()
    if name in registry.names() and registry.create(name).availability().available:
        return MeasuredLatency(str(latency.loaded.target), workload)
    print(
        f"latbench: note: target {name} is not available here; latencies are predicted only",
        file=sys.stderr,
    )
    return None


def _print_pareto(console, outcome) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    if not console.is_terminal:
        console.width = max(console.width, 120)
    table = Table(title=f"Pareto set of study {outcome.study_name} ({len(outcome.pareto)} students)")
    for col in ("trial", "student", "params", "predicted ms (90%)", "measured ms", "search acc.",
                "final acc.", "loyalty"):  # fmt: skip
        table.add_column(col)
    for m in outcome.pareto:
        t = m.trial
        final = m.final
        loyalty = "" if final is None else f"{final.metrics.get('label_loyalty', float('nan')):.3f}"
        measured = m.final_latency.ms if m.final_latency is not None else t.measured_ms
        table.add_row(
            str(t.number),
            t.arch.short_label,
            f"{t.arch.params / 1e6:.2f} M",
            f"{t.predicted_ms:.3f} [{t.predicted_low_ms:.3f}-{t.predicted_high_ms:.3f}]",
            "" if measured is None else f"{measured:.3f}",
            f"{t.accuracy:.3f}",
            "" if final is None else f"{final.accuracy:.3f}",
            loyalty,
        )
    console.print(table)


DEMO_TARGET = "onnxruntime-cpu:threads=1"


def cmd_demo(args: argparse.Namespace) -> int:
    """Every stage as the latbench command a user would type, run in this process."""
    import time
    from pathlib import Path

    from latbench.arch import Workload
    from latbench.distill.demo_task import DEMO_TEACHER_ARCH
    from latbench.search.objectives import PredictedLatency

    out = Path(args.out)
    trials = _positive("--trials", args.trials)
    startup = max(2, min(5, trials // 2))  # the GP's model takes over after these
    console = _console()
    db, task, predictor = out / "latbench.db", out / "task", out / "lut-block.json"
    seconds: dict[str, float] = {}
    total = 7 - bool(args.no_baseline)
    started = time.perf_counter()

    def stage(name: str, argv: list[str]) -> None:
        console.rule(f"[bold]{len(seconds) + 1}/{total} {name}")
        console.print("$ latbench " + " ".join(argv), markup=False, highlight=False)
        begin = time.perf_counter()
        inner = build_parser().parse_args(argv)
        inner.argv = argv
        code = COMMANDS[inner.command](inner)
        if code:
            raise LatbenchError(f"stage {name!r} failed (exit code {code})")
        seconds[name] = time.perf_counter() - begin

    teacher_steps = [] if args.teacher_steps is None else ["--teacher-steps", str(args.teacher_steps)]
    stage("demo task and teacher", ["demo-task", "--out", str(task), *teacher_steps])
    samples = [] if args.samples is None else ["--samples", str(_positive("--samples", args.samples))]
    stage("profile", ["profile", "--target", DEMO_TARGET, "--plan", args.plan, "--db", str(db), *samples])
    stage("fit the search's cost model", ["fit", "--db", str(db), "--target", DEMO_TARGET,
                                          "--predictor", "lut-block", "--out", str(predictor)])  # fmt: skip
    stage("evaluate predictors", ["evaluate", "--db", str(db), "--target", DEMO_TARGET,
                                  "--out", str(out / "evaluation")])  # fmt: skip
    workload = Workload(1, 128)
    teacher_ms = PredictedLatency(predictor, workload).estimate([DEMO_TEACHER_ARCH])[0].ms
    budget = f"{teacher_ms / 2:.3g}"  # students at least twice as fast as the teacher
    common = ["--space", "demo", "--teacher", str(task / "teacher"), "--data", str(task / "train.jsonl"),
              "--dev", str(task / "dev.jsonl"), "--predictor", str(predictor), "--budget-ms", budget,
              "--trials", str(trials), "--startup-trials", str(startup),
              "--proxy-steps", str(args.proxy_steps)]  # fmt: skip
    stage("search (GP) and the Pareto set", ["search", *common, "--final-epochs", str(args.final_epochs),
                                            "--out", str(out / "search")])  # fmt: skip
    report = ["report", str(out / "search"), str(out / "evaluation"), "--out", str(out / "report")]
    if not args.no_baseline:
        stage("baseline search (random)", ["search", *common, "--sampler", "random", "--no-final",
                                           "--no-measure", "--out", str(out / "random")])  # fmt: skip
        report += ["--baseline", str(out / "random")]
    stage("report", report)
    wall = time.perf_counter() - started
    console.rule("[bold]done")
    for name, s in seconds.items():
        console.print(f"  {name:<32} {s:7.1f} s  {s / wall:6.1%}", markup=False, highlight=False)
    console.print(f"  {'total':<32} {wall:7.1f} s", markup=False, highlight=False)
    timings = {"wall_s": wall, "stages_s": seconds, "command": ["latbench", *args.argv]}
    (out / "demo-timings.json").write_text(json.dumps(timings, indent=1) + "\n", encoding="utf-8")
    console.print(f"report: {(out / 'report' / 'report.html').resolve()}", markup=False, highlight=False)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from latbench.reports.build import build_report

    files = build_report(
        args.results, args.out, baselines=args.baseline, title=args.title, command=["latbench", *args.argv]
    )
    for note in files.notes:
        print(f"latbench: note: {note}", file=sys.stderr)
    names = ", ".join(p.name for p in files.images)
    print(f"wrote {files.html} ({len(files.images)} figures, also as PNG beside it: {names})")
    return 0


COMMANDS = {
    "devices": cmd_devices,
    "profile": cmd_profile,
    "measure": cmd_measure,
    "fit": cmd_fit,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "specsheets": cmd_specsheets,
    "export": cmd_export,
    "distill": cmd_distill,
    "demo-task": cmd_demo_task,
    "search": cmd_search,
    "report": cmd_report,
    "demo": cmd_demo,
}


if __name__ == "__main__":
    sys.exit(main())
