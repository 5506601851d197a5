"""``latbench search``: the predictor-guided architecture search. The options fill a
``latbench.search.settings.SearchJob`` (over a ``--config`` TOML file, over the defaults
written there); ``latbench.search.run.SearchRun`` does the work."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from latbench.cli.common import console, progress_bar
from latbench.cli.distill import add_teacher_and_data


def register(sub: Any) -> None:
    from latbench.search.settings import EVALUATORS, SAMPLERS, STARTUPS, SearchJob

    d = SearchJob.defaults()
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
    # Every default is None here: a flag not given leaves the --config file's value or the
    # SearchJob default (shown in brackets, read from there).
    p.add_argument("--config", help="TOML file with any of the options below")
    p.add_argument(
        "--space",
        help="search space: autodistil-tiny, autodistil-small, autodistil-base, "
        "hat, bert-mini, demo (the demo teacher's students), or a TOML/YAML file",
    )
    add_teacher_and_data(p, required=False)  # they may come from --config
    p.add_argument("--predictor", help="latency predictor file from `latbench fit`")
    p.add_argument(
        "--target",
        help="measure on this target (available here) the students whose "
        "interval straddles the budget and the Pareto set [the predictor's target when "
        "available here]",
    )
    p.add_argument("--no-measure", action="store_true", default=None, help="never measure; predictions only")
    p.add_argument("--batch", type=int, help=f"workload batch size [{d['batch']}]")
    p.add_argument("--seq", type=int, help=f"workload sequence length [{d['seq']}]")
    p.add_argument("--budget-ms", type=float, help="latency budget in ms (a constraint) [none]")
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        help="gp: a GP on accuracy proposing, among thousands of students whose latency the predictor "
        "gives, the one of largest expected hypervolume improvement; optuna-gp: Optuna's GP on both "
        f"objectives; tpe: for many workers; nsga2; random: the baseline [{d['sampler']}]",
    )
    p.add_argument(
        "--trials", type=int, help=f"students to evaluate (over-budget ones are free) [{d['trials']}]"
    )
    p.add_argument(
        "--reference-accuracy",
        type=float,
        help="the hypervolume's reference accuracy: fronts "
        "are compared on what they gain above it (e.g. the majority-class rate); a study "
        f"keeps it, so give the same value when resuming [{d['reference_accuracy']:g}]",
    )
    p.add_argument(
        "--reference-ms",
        type=float,
        help="the hypervolume's reference latency in ms [the "
        "budget, else 1.1x the predicted latency of the space's largest student]",
    )
    p.add_argument("--seed", type=int, help=f"random seed [{d['seed']}]")
    p.add_argument(
        "--startup",
        choices=STARTUPS,
        help=f"first trials spread over predicted latency, or the sampler's [{d['startup']}]",
    )
    p.add_argument(
        "--startup-trials",
        type=int,
        help=f"trials before the sampler's model takes over [{d['startup_trials']}]",
    )
    p.add_argument("--storage", help="Optuna storage URL [sqlite:///OUT/study.db]")
    p.add_argument("--study", help=f"study name (workers sharing one study use the same) [{d['study']}]")
    p.add_argument(
        "--heartbeat-s",
        type=int,
        help="a running trial's heartbeat period; one silent "
        f"for four periods is failed and retried by another worker [{d['heartbeat_s']}]",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes on this machine sharing the study "
        "(the cores are shared out among them; a measurement waits until no search on this "
        f"machine trains); extra workers log to OUT/worker-K.log [{d['workers']}]",
    )
    p.add_argument(
        "--worker",
        type=int,
        metavar="K",
        help="run as extra worker K of a shared study: "
        "evaluate trials until the study holds --trials, then exit without the Pareto set's "
        "distillation or results (one worker without --worker does those). K varies the "
        "sampler's seed, so give each worker its own (--workers N takes 1 to N-1)",
    )
    p.add_argument(
        "--evaluator",
        choices=EVALUATORS,
        help="how a trial's accuracy is found: proxy (a short distillation of each student) or "
        "supernet (the student read off --supernet, no distillation per trial) "
        f"[{d['evaluator']}]",
    )
    p.add_argument("--supernet", help="the --out folder of `latbench supernet train` (--evaluator supernet)")
    p.add_argument(
        "--supernet-scoring",
        choices=("direct", "finetune"),
        help="a supernet student's accuracy as read (direct) or after --supernet-steps of "
        f"distillation from its supernet weights (finetune) [{d['supernet_scoring']}]",
    )
    p.add_argument(
        "--supernet-steps",
        type=int,
        help=f"fine-tuning steps with --supernet-scoring finetune [{d['supernet_steps']}]",
    )
    p.add_argument("--out", help="output folder (search.json, trials.csv, Pareto students)")
    p.add_argument("--proxy-steps", type=int, help=f"steps of each proxy distillation [{d['proxy_steps']}]")
    p.add_argument(
        "--proxy-examples", type=int, help=f"training examples of the proxy [{d['proxy_examples']}]"
    )
    p.add_argument(
        "--final-epochs",
        type=float,
        help=f"epochs of the Pareto set's full distillation [{d['final_epochs']:g}]",
    )
    p.add_argument(
        "--losses",
        help="loss weights of the proxy and the final distillations, as `latbench distill --losses` "
        f"[{d['losses']}]",
    )
    p.add_argument("--no-final", action="store_true", default=None, help="skip the full distillation")
    p.add_argument(
        "--surrogate",
        action="store_true",
        default=None,
        help="score students with the built-in accuracy surrogate instead of distillation "
        "(no teacher or data; for trying settings and benchmarking samplers)",
    )
    p.set_defaults(run=cmd_search)


PARSERS = {"search": register}


def search_job(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The ``SearchJob`` the options ask for: command line over ``--config`` over the defaults."""
    from latbench.files import read_config_file
    from latbench.search.settings import SearchJob

    options: dict[str, Any] = {}
    if args.config:
        data, _ = read_config_file(args.config, "search config", {})
        options.update({k: v for k, v in data.items() if k != "config"})
        SearchJob.check_option_names(options, source=args.config)
    names = SearchJob.option_names()
    options.update({k: v for k, v in vars(args).items() if k in names and v is not None})
    return SearchJob.from_options(options)


def cmd_search(args: argparse.Namespace) -> int:
    from latbench.search.run import SearchRun
    from latbench.search.study import pareto_front

    def note(line: str) -> None:
        print(f"latbench: note: {line}", file=sys.stderr)

    def warn(line: str) -> None:
        print(f"latbench: warning: {line}", file=sys.stderr)

    run = SearchRun(search_job(args), args.argv, note=note)  # checks all it can before a trial
    out = console()
    out.print(run.describe(), markup=False)
    run.open()
    with progress_bar("searching") as bar:
        task = bar.add_task("", total=run.settings.trials)

        def on_trial(record, records, hv: float) -> None:  # type: ignore[no-untyped-def]
            front = pareto_front(records)
            what = "over budget (predicted)" if record.skipped else f"acc {record.accuracy:.3f}"
            bar.update(
                task,
                completed=sum(r.evaluated for r in records),
                description=f"#{record.number} {record.arch.short_label} {what} "
                f"{record.latency_ms:.2f} ms | front {len(front)} | HV {hv:.4g}",
            )
            if any(m.number == record.number for m in front):  # the front so far, each time it moves
                steps = " · ".join(f"{m.latency_ms:.2f} ms {m.accuracy:.3f}" for m in front)
                label = record.arch.short_label
                bar.console.print(f"trial {record.number} ({label}) joins the front: {steps}", markup=False)

        def waiting(n: int) -> None:
            bar.update(task, description=f"waiting for {n} worker(s) to finish their trials")

        outcome = run.search(on_trial, warn=warn, waiting=waiting)
    if run.job.worker:
        out.print(
            f"worker {run.job.worker}: the study holds {outcome.evaluated} evaluated students; the worker "
            "without --worker distils the Pareto set and writes the results",
            markup=False,
        )
        return 0
    if run.finishing_work:
        with progress_bar("Pareto set") as bar:
            task = bar.add_task("", total=len(outcome.pareto))

            def on_member(i: int, n: int, record) -> None:  # type: ignore[no-untyped-def]
                bar.update(task, completed=i, description=f"distilling {record.arch.short_label}")

            outcome = run.finish(outcome, on_member)
            bar.update(task, completed=len(outcome.pareto))
    else:
        outcome = run.finish(outcome)
    paths = run.write(outcome)
    print_pareto(out, outcome)
    out.print(
        f"{outcome.evaluated} students evaluated, {sum(t.skipped for t in outcome.trials)} rejected by "
        f"the predictor; hypervolume {outcome.hypervolume[-1]:.4g} (reference {outcome.reference[0]:g}, "
        f"{outcome.reference[1]:.3f} ms); wrote " + ", ".join(str(p) for p in paths),
        markup=False,
    )
    return 0


def print_pareto(out, outcome) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    if not out.is_terminal:
        out.width = max(out.width, 120)
    table = Table(title=f"Pareto set of study {outcome.study_name} ({len(outcome.pareto)} students)")
    for col in (
        "trial",
        "student",
        "params",
        "predicted ms (90%)",
        "measured ms",
        "search acc.",
        "final acc.",
        "loyalty",
    ):
        table.add_column(col)
    for m in outcome.pareto:
        t, final = m.trial, m.final
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
    out.print(table)
