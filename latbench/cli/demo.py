"""``latbench demo``: every stage of the pipeline on the built-in demo, each run as the
``latbench`` command it prints (``latbench.demo`` lists them)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from latbench.cli.common import console
from latbench.cli.distill import add_teacher_steps
from latbench.errors import LatbenchError


def register(sub: Any) -> None:
    from latbench.demo import DemoSettings
    from latbench.timing import ProtocolSettings

    d = DemoSettings()
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
    p.add_argument("--out", default=d.out, help=f"output folder [{d.out}]")
    p.add_argument("--plan", default=d.plan, help=f"profile plan [{d.plan}]")
    p.add_argument("--trials", type=int, default=d.trials, help=f"students the search distils [{d.trials}]")
    p.add_argument(
        "--proxy-steps",
        type=int,
        default=d.proxy_steps,
        help=f"steps of each proxy distillation [{d.proxy_steps}]",
    )
    p.add_argument(
        "--final-epochs",
        type=float,
        default=d.final_epochs,
        help=f"epochs of the Pareto set's full distillation [{d.final_epochs:g}]",
    )
    add_teacher_steps(p)
    p.add_argument("--no-baseline", action="store_true", help="skip the random-search baseline")
    p.add_argument(
        "--samples",
        type=int,
        default=d.samples,
        help=f"samples per spec when profiling (fewer: faster, noisier) [{ProtocolSettings().samples}]",
    )
    p.add_argument(
        "--evaluator",
        choices=("proxy", "supernet"),
        default=d.evaluator,
        help="how the searches score students: a proxy distillation each (proxy), or read off a "
        f"supernet trained once first (supernet: the one-shot path) [{d.evaluator}]",
    )
    p.add_argument(
        "--supernet-steps",
        type=int,
        default=d.supernet_steps,
        help=f"the supernet's training steps with --evaluator supernet [{d.supernet_steps}]",
    )
    p.set_defaults(run=cmd_demo)


PARSERS = {"demo": register}


def demo_settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from latbench.demo import DemoSettings

    return DemoSettings(
        out=args.out,
        plan=args.plan,
        trials=args.trials,
        proxy_steps=args.proxy_steps,
        final_epochs=args.final_epochs,
        teacher_steps=args.teacher_steps,
        baseline=not args.no_baseline,
        samples=args.samples,
        evaluator=args.evaluator,
        supernet_steps=args.supernet_steps,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """Every stage as the latbench command a user would type, run in this process."""
    from latbench.cli.app import run
    from latbench.demo import demo_stages

    settings = demo_settings(args)
    out = console()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    for stage in demo_stages(settings):
        out.rule(f"[bold]{len(seconds) + 1}/{settings.stage_count} {stage.name}")
        out.print("$ latbench " + " ".join(stage.argv), markup=False, highlight=False)
        begin = time.perf_counter()
        code = run(stage.argv)
        if code:
            raise LatbenchError(f"stage {stage.name!r} failed (exit code {code})")
        seconds[stage.name] = time.perf_counter() - begin
    wall = time.perf_counter() - started
    out.rule("[bold]done")
    for name, s in seconds.items():
        out.print(f"  {name:<32} {s:7.1f} s  {s / wall:6.1%}", markup=False, highlight=False)
    out.print(f"  {'total':<32} {wall:7.1f} s", markup=False, highlight=False)
    timings = {"wall_s": wall, "stages_s": seconds, "command": ["latbench", *args.argv]}
    folder = Path(settings.out)
    (folder / "demo-timings.json").write_text(json.dumps(timings, indent=1) + "\n", encoding="utf-8")
    out.print(f"report: {(folder / 'report' / 'report.html').resolve()}", markup=False, highlight=False)
    return 0
