"""``latbench distill`` and ``latbench demo-task``: a student distilled from a teacher, and
the built-in demo task with its teacher."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from latbench.cli.common import console, loss_bar, positive


def add_teacher_and_data(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument(
        "--teacher",
        required=required,
        help="folder of the teacher: a Hugging Face BERT, ELECTRA, RoBERTa or DistilBERT "
        "sequence classifier (config.json, weights, tokenizer) or a latbench student",
    )
    p.add_argument("--data", required=required, help="training data (file or folder)")
    p.add_argument("--dev", help="development data [the folder's dev split, else 10%% of --data]")


def register_distill(sub: Any) -> None:
    from latbench.distill.settings import INITS, PROXY_EXAMPLES, PROXY_STEPS, DistillConfig, format_layer_map

    d = DistillConfig()
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
    add_teacher_and_data(p, required=True)
    p.add_argument(
        "--arch",
        required=True,
        help="student architecture JSON or a path to one, e.g. "
        '\'{"layers": 4, "hidden": 256, "heads": 4, "ffn": 1024}\'',
    )
    p.add_argument("--out", required=True, help="output folder (student/, student.onnx, metrics.json)")
    p.add_argument(
        "--proxy",
        action="store_true",
        help=f"short proxy run: {PROXY_STEPS} steps on {PROXY_EXAMPLES:,} examples",
    )
    p.add_argument("--steps", type=int, default=d.steps, help="training steps [from --epochs]")
    p.add_argument(
        "--epochs", type=float, default=d.epochs, help=f"epochs when --steps is not given [{d.epochs:g}]"
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"examples per step [{d.batch_size}]")
    p.add_argument(
        "--lr", type=float, default=d.learning_rate, help=f"peak learning rate [{d.learning_rate:g}]"
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=d.temperature,
        help=f"softmax temperature of the logits loss [{d.temperature:g}]",
    )
    p.add_argument(
        "--losses",
        default=d.losses.format(),
        help=f"loss weights among logits, hidden, attention, relations, labels [{d.losses.format()}]",
    )
    p.add_argument(
        "--layer-map",
        default=format_layer_map(d.layer_map),
        help="teacher layer for each student layer: uniform, last, or a list such as 2,4,6 "
        f"[{format_layer_map(d.layer_map)}]",
    )
    p.add_argument(
        "--init",
        choices=INITS,
        default=d.init,
        help=f"student weights: extracted from the teacher by importance (etd) or random [{d.init}]",
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed [{d.seed}]")
    p.add_argument(
        "--eval-every",
        type=int,
        default=d.eval_every,
        help="evaluate on the dev set every N steps [end only]",
    )
    p.add_argument("--no-int8", action="store_true", help="skip the INT8 variant")
    p.add_argument(
        "--quantize",
        metavar="wNaM",
        help="quantization-aware distillation with learned step sizes (LSQ, KDLSQ-BERT): N-bit "
        "weights (2-8, per channel) and M-bit activations, e.g. w8a8, w4a8, w2a8; the ONNX export "
        "is then a QDQ graph run on ONNX Runtime's 8-bit integer kernels [off]",
    )
    p.add_argument(
        "--fixed-scales",
        action="store_true",
        help="with --quantize: min-max scales fixed before training instead of learned (the ablation)",
    )
    p.add_argument("--json", action="store_true", help="print metrics.json instead of a summary")
    p.set_defaults(run=cmd_distill)


def register_demo_task(sub: Any) -> None:
    p = sub.add_parser(
        "demo-task",
        help="write the built-in demo task and train its demo teacher",
        description="Generate the demo text-classification task (stacked negation, fixed "
        "seed; see latbench/distill/demo_task.py) as train.jsonl and dev.jsonl, and train the built-in "
        "demo teacher (a 4-layer BERT) into OUT/teacher. Reuses what is already there.",
    )
    p.add_argument("--out", default="latbench-demo", help="output folder [latbench-demo]")
    add_teacher_steps(p)
    p.set_defaults(run=cmd_demo_task)


def add_teacher_steps(p: argparse.ArgumentParser) -> None:
    from latbench.distill.demo_task import DEMO_TEACHER_STEPS

    p.add_argument(
        "--teacher-steps", type=int, default=None, help=f"teacher training steps [{DEMO_TEACHER_STEPS}]"
    )


PARSERS = {"distill": register_distill, "demo-task": register_demo_task}


def distill_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The ``DistillConfig`` that ``latbench distill``'s options ask for."""
    from latbench.distill.pipeline import proxy_config
    from latbench.distill.settings import DistillConfig, LossWeights, parse_layer_map

    config = DistillConfig(
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        temperature=args.temperature,
        losses=LossWeights.parse(args.losses),
        layer_map=parse_layer_map(args.layer_map),
        init=args.init,
        seed=args.seed,
        eval_every=args.eval_every,
    )
    return proxy_config(config) if args.proxy else config


def cmd_distill(args: argparse.Namespace) -> int:
    from rich.table import Table

    from latbench.arch import Arch
    from latbench.distill import check_settings, distill_student, load_checkpoint, load_data
    from latbench.distill.pipeline import METRICS_FILE

    arch = Arch.from_json(args.arch)
    config = distill_config(args)
    quantize = None
    if args.quantize:
        from latbench.distill.quant import check_bits, parse_bits

        quantize = (*check_bits(*parse_bits(args.quantize)), bool(args.fixed_scales))
    elif args.fixed_scales:
        from latbench.errors import ConfigError

        raise ConfigError("--fixed-scales needs --quantize")
    # Everything that can be checked is checked before the first step.
    teacher = load_checkpoint(args.teacher)
    check_settings(teacher, arch, config)
    datasets = load_data(args.data, args.dev, teacher, 0.1, config.seed)
    out = console()
    bar, on_step = loss_bar("distilling")
    with bar:
        outcome = distill_student(
            args.teacher, args.data, arch, args.out, config, dev_path=args.dev, int8=not args.no_int8,
            on_step=on_step, teacher=teacher, datasets=datasets, quantize=quantize,
        )  # fmt: skip
    if args.json:
        print((Path(args.out) / METRICS_FILE).read_text(encoding="utf-8"), end="")
        return 0
    if not out.is_terminal:
        out.width = max(out.width, 110)  # the eight columns fit on one line in a log
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
        sizes = (f"{params:,}" if params else "", f"{flops / 1e9:.2f}" if flops else "")
        table.add_row(name, *sizes, f"{q.accuracy:.3f}", f"{q.f1:.3f}", f"{q.mcc:.3f}", *loyal)

    row("teacher", outcome.teacher, outcome.teacher_params, outcome.teacher_flops)
    row("student", outcome.student, outcome.student_params, outcome.student_flops)
    if outcome.int8 is not None:
        row("student INT8", outcome.int8, None, None)
    out.print(table)
    if quantize is not None:
        q = json.loads((Path(args.out) / METRICS_FILE).read_text(encoding="utf-8"))["quantization"]
        out.print(
            f"quantized W{q['weight_bits']}A{q['activation_bits']} "
            f"({'fixed min-max' if q['fixed_scales'] else 'learned (LSQ)'} scales): packed size "
            f"{q['packed_bytes'] / 1024:.0f} KiB; student.onnx is a QDQ graph on 8-bit integer kernels",
            markup=False,
        )
    resumed = f", resumed at step {outcome.resumed_from}" if outcome.resumed_from else ""
    out.print(
        f"{outcome.steps} steps in {outcome.train_seconds:.0f} s{resumed}; wrote {args.out}/: "
        + ", ".join(outcome.files),
        markup=False,
    )
    return 0


def cmd_demo_task(args: argparse.Namespace) -> int:
    from latbench.distill.demo_task import write_demo_task

    kwargs = (
        {}
        if args.teacher_steps is None
        else {"teacher_steps": positive("--teacher-steps", args.teacher_steps)}
    )
    bar, on_step = loss_bar("training the demo teacher")
    with bar:
        files = write_demo_task(args.out, on_step=on_step, **kwargs)
    console().print(f"demo task: {files.train}, {files.dev}; teacher: {files.teacher}", markup=False)
    return 0
