"""``latbench supernet``: train weight-sharing supernets task-agnostically (``train``) and
read students off them without retraining (``extract``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from latbench.cli.common import console, progress_bar


def register_supernet(sub: Any) -> None:
    from latbench.distill.settings import SUPERNET_INITS, SUPERNET_TRAININGS, SupernetConfig
    from latbench.distill.supernet import LAYER_RULES

    d = SupernetConfig()
    p = sub.add_parser(
        "supernet",
        help="train a weight-sharing supernet once, then extract students without retraining",
        description="The one-shot path (AutoDistil, NAS-BERT): `supernet train` distils one "
        "weight-sharing super language model per shot of a search space from a teacher on "
        "unlabelled text, every student at once (sandwich rule, MiniLM relations, weights "
        "initialised from the teacher by importance); `supernet extract` cuts a student out of "
        "it, a plain checkpoint to measure, fine-tune or export.",
    )
    commands = p.add_subparsers(dest="supernet_command", metavar="ACTION", required=True)
    t = commands.add_parser(
        "train",
        help="train the supernets of a space's shots from a teacher on unlabelled text",
        description="Train one supernet per shot of --space (a space without shots is one shot) "
        "from --teacher on unlabelled text, task-agnostically: no labels are read. Resumable: "
        "rerunning the same command continues an interrupted run; Ctrl-C loses at most the steps "
        "since the last saved state.",
        epilog="Text: a file with one sentence per line, a folder of .txt files, a .jsonl/.csv/"
        ".tsv file or a Hugging Face dataset saved with save_to_disk (its text column is read), "
        "or --demo-text for sentences from the built-in demo task's generator. Try: `latbench "
        "demo-task --out demo` then `latbench supernet train --teacher demo/teacher --demo-text "
        "--space demo-2shot --out supernets`.",
    )
    t.add_argument("--teacher", required=True, help="folder of the teacher classifier")
    text = t.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="unlabelled text: a file or folder (see below)")
    text.add_argument(
        "--demo-text",
        nargs="?",
        type=int,
        const=12_000,
        metavar="N",
        help="N sentences from the demo task's generator [12000]",
    )
    t.add_argument("--text-field", help="column of --text to read [the first of sentence, text, …]")
    t.add_argument("--space", required=True, help="built-in space name or a TOML/YAML file (its shots)")
    t.add_argument("--out", required=True, help="output folder: one supernet folder per shot, shots.json")
    t.add_argument("--steps", type=int, default=d.steps, help=f"steps per shot [{d.steps}]")
    t.add_argument(
        "--batch-size", type=int, default=d.batch_size, help=f"sentences per step [{d.batch_size}]"
    )
    t.add_argument(
        "--lr", type=float, default=d.learning_rate, help=f"peak learning rate [{d.learning_rate:g}]"
    )
    t.add_argument(
        "--losses",
        default=d.losses.format(),
        help=f"loss weights among relations, hidden, logits [{d.losses.format()}]",
    )
    t.add_argument(
        "--random-students",
        type=int,
        default=d.random_students,
        help=f"random students per step besides the largest and smallest [{d.random_students}]",
    )
    t.add_argument(
        "--training",
        choices=SUPERNET_TRAININGS,
        default=d.training,
        help="end-to-end (every student's output learns the teacher's) or blockwise (NAS-BERT: "
        f"each student layer learns its block of teacher layers) [{d.training}]",
    )
    t.add_argument(
        "--layer-rule",
        choices=LAYER_RULES,
        default=d.layer_rule,
        help=f"which layers a shallower student keeps: spread (DynaBERT) or first [{d.layer_rule}]",
    )
    t.add_argument(
        "--init",
        choices=SUPERNET_INITS,
        default=d.init,
        help=f"shared weights from the teacher, ranked by importance (etd), or random [{d.init}]",
    )
    t.add_argument("--seed", type=int, default=d.seed, help=f"random seed [{d.seed}]")
    t.set_defaults(run=cmd_supernet_train)
    e = commands.add_parser(
        "extract",
        help="cut one student out of trained supernets",
        description="Read the student --arch off the supernet of its shot and save it as an "
        "ordinary checkpoint (the folder `latbench distill --teacher`, `latbench measure` and the "
        "ONNX export read).",
    )
    e.add_argument("--supernet", required=True, help="the --out folder of `latbench supernet train`")
    e.add_argument(
        "--arch",
        required=True,
        help="student architecture JSON or a path to one, e.g. "
        '\'{"layers": 2, "hidden": 96, "heads": 2, "ffn": 192}\'',
    )
    e.add_argument("--out", required=True, help="folder for the student checkpoint")
    e.set_defaults(run=cmd_supernet_extract)


PARSERS = {"supernet": register_supernet}


def supernet_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The ``SupernetConfig`` that ``latbench supernet train``'s options ask for."""
    from latbench.distill.settings import LossWeights, SupernetConfig

    return SupernetConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        losses=LossWeights.parse(args.losses),
        random_students=args.random_students,
        training=args.training,
        layer_rule=args.layer_rule,
        init=args.init,
        seed=args.seed,
    )


def cmd_supernet_train(args: argparse.Namespace) -> int:
    from rich.table import Table

    from latbench.distill import demo_texts, load_checkpoint, load_texts
    from latbench.search.oneshot import check_bank, train_bank
    from latbench.search.space import load_space

    config = supernet_config(args)
    space = load_space(args.space)
    teacher = load_checkpoint(args.teacher)
    check_bank(teacher, space, config)  # before any text is read
    if args.text is not None:
        texts = load_texts(args.text, text_field=args.text_field)
    else:
        texts = demo_texts(args.demo_text)
    shots = space.shot_spaces()
    bar = progress_bar("supernet")
    task = bar.add_task("", total=None)

    def on_shot(index: int, name: str) -> None:
        bar.update(task, completed=0, description=f"shot {index + 1}/{len(shots)} {name}")

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        bar.update(task, completed=step, total=total)

    with bar:
        outcomes = train_bank(
            teacher, space, texts, args.out, config,
            teacher_name=str(args.teacher), on_shot=on_shot, on_step=on_step,
        )  # fmt: skip
    table = Table(title=f"{len(outcomes)} supernet(s) of {space.name}, {len(texts):,} sentences")
    for col in ("shot", "students", "steps", "seconds", "held-out loss: largest", "smallest"):
        table.add_column(col)
    counts = {s.name: s.count() for s in shots}
    for o in outcomes:
        last = o.history[-1] if o.history else {}
        table.add_row(
            o.name,
            f"{counts[o.name]:,}",
            str(o.steps),
            f"{o.train_seconds:.0f}" + (f" (resumed at {o.resumed_from})" if o.resumed_from else ""),
            f"{last.get('held_out_largest', float('nan')):.5f}",
            f"{last.get('held_out_smallest', float('nan')):.5f}",
        )
    out = console()
    out.print(table)
    out.print(f"wrote {args.out}/", markup=False)
    return 0


def cmd_supernet_extract(args: argparse.Namespace) -> int:
    from latbench.arch import Arch
    from latbench.distill.checkpoint import save_checkpoint
    from latbench.distill.model import count_parameters
    from latbench.search.oneshot import load_bank

    arch = Arch.from_json(args.arch)
    bank = load_bank(args.supernet)
    shot, student = bank.extract(arch)
    _, loaded = bank.find(arch)
    save_checkpoint(Path(args.out), student, loaded.encoder, loaded.label_names)
    console().print(
        f"extracted {arch.num_layers} layers, hidden {arch.hidden} ({count_parameters(student):,} "
        f"parameters) from shot {shot} into {args.out}/",
        markup=False,
    )
    return 0
