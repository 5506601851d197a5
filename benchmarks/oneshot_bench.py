"""One-shot search benchmark on the built-in demo task: does a supernet rank students as
distilling each on its own would, and how much faster is a search that reads them off it?

    .venv/bin/python benchmarks/oneshot_bench.py [--data DIR] [--only SECTION,...] [--json FILE]

Everything is written under ``--data`` (default ``.latbench-bench/oneshot``) and reused by
a rerun (the demo teacher, the supernet, the stand-alone students).

* **ranking**: a supernet of the demo space is trained once, task-agnostically, on
  unlabelled demo sentences (``latbench supernet train``'s defaults). ``--students``
  students spread over the space by parameter count are each (a) read off the supernet
  and scored on the dev set as read (``direct``) and after ``--finetune-steps`` of
  distillation from their supernet weights (``finetune``), and by their task-agnostic loss
  against the teacher on held-out unlabelled sentences (``agnostic``, negated so that higher
  is better); also off a supernet trained block-wise (NAS-BERT's cheaper variant: scored
  by the sum of its blocks' losses, and as read); (b) read off an *untrained*
  supernet (random initialisation: the floor; and the teacher-extracted initialisation
  before any training, ETD), and (c) distilled on their own with the existing trainer
  (the demo's final distillation, ``--standalone-epochs``) with ``--seeds`` seeds. Printed
  in one run: Kendall τ of each reading against the stand-alone accuracy (seed mean), τ of
  parameter count (the naive baseline), τ between the two seeds (the ceiling), each
  reading's top-pick regret, and "inconclusive" when the stand-alone accuracies spread
  less than three seed standard deviations.
* **speed**: the wall time of a ``--trials``-trial search (TPE, latencies priced from
  FLOPs so that only the accuracy evaluation differs) with the supernet evaluator
  (``direct``), against the per-trial proxy distillation of the demo's search (150 steps
  on 2,000 examples), run for ``--proxy-trials`` trials and scaled to equal trials (the
  scaling is printed as such). The supernet's one-off training time is printed beside.
* **useful**: one student architecture (the middle of the spread) fine-tuned on 200 and
  2,000 labels (3 seeds each) from random initialisation, from its weights read off the
  task-agnostically trained supernet (classification head and pooler re-initialised, so
  no label knowledge comes from the teacher's head), and by Cross-View Training from
  random initialisation on the labels plus the supernet's unlabelled sentences; dev
  accuracy, mean and standard deviation per row.

Run it alone: the wall times are the figure.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latbench.arch import Arch, Workload
from latbench.distill.agnostic import AgnosticLoss, agnostic_loss, blockwise_loss, new_supernet
from latbench.distill.checkpoint import load_checkpoint
from latbench.distill.cvt import train_cvt
from latbench.distill.data import load_dataset
from latbench.distill.demo_task import LABEL_NAMES, demo_texts, write_demo_task
from latbench.distill.extract import student_for_teacher
from latbench.distill.model import count_parameters
from latbench.distill.pipeline import TaskScorer, distill_student, encode
from latbench.distill.settings import DistillConfig, LossWeights, SupernetConfig
from latbench.distill.supernet import reference_teacher
from latbench.distill.trainer import evaluate, train
from latbench.search.objectives import LatencyEstimate, ProxyDistillation
from latbench.search.oneshot import SupernetAccuracy, load_bank, train_bank
from latbench.search.settings import SearchSettings
from latbench.search.space import DEMO, SearchSpace
from latbench.search.study import run_search

SECTIONS = ("ranking", "speed", "useful")
SPACE: SearchSpace = DEMO
DEMO_PROXY_STEPS = 150  # latbench.demo.DemoSettings.proxy_steps


def name(arch: Arch) -> str:
    return f"{arch.num_layers}L/{arch.hidden}H/{arch.heads[0]}A/{arch.ffn[0]}F"


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import kendalltau

    value = kendalltau(a, b).statistic
    return float("nan") if value is None or math.isnan(value) else float(value)


def spread_students(space: SearchSpace, count: int) -> list[Arch]:
    """``count`` students at evenly spaced ranks of parameter count (smallest and largest
    included)."""
    archs = sorted(_all_archs(space), key=lambda a: (a.params, a.num_layers, a.hidden))
    if count >= len(archs):
        return archs
    picks = sorted({round(i * (len(archs) - 1) / (count - 1)) for i in range(count)})
    return [archs[i] for i in picks]


def _all_archs(space: SearchSpace) -> list[Arch]:
    import itertools

    return [space.from_indices(list(i)) for i in itertools.product(*(range(n) for n in space.choice_counts))]


class FlopsLatency:
    """A latency cost from FLOPs (no backend), so that searches differ only in accuracy."""

    name = "flops"

    def estimate(self, archs: Sequence[Arch]) -> list[LatencyEstimate]:
        out = []
        for arch in archs:
            ms = arch.flops(Workload(1, 128)) / 1e8
            out.append(LatencyEstimate(ms, ms, ms))
        return out

    def describe(self) -> dict[str, Any]:
        return {"latency": self.name}


# --- sections -----------------------------------------------------------------------------
def prepare(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(args.data)
    files = write_demo_task(
        data / "task",
        train_examples=args.train_examples,
        dev_examples=args.dev_examples,
        teacher_steps=args.teacher_steps,
    )
    teacher = load_checkpoint(files.teacher)
    datasets = (
        load_dataset(files.train, label_names=LABEL_NAMES),
        load_dataset(files.dev, label_names=LABEL_NAMES),
    )
    config = SupernetConfig(steps=args.supernet_steps)
    started = time.perf_counter()
    outcomes = train_bank(teacher, SPACE, demo_texts(args.text_sentences), data / "supernet", config)
    blockwise = train_bank(
        teacher, SPACE, demo_texts(args.text_sentences), data / "supernet-blockwise",
        SupernetConfig(steps=args.supernet_steps, training="blockwise"),
    )  # fmt: skip
    print(
        "block-wise supernet (NAS-BERT's variant), same steps: "
        f"{sum(o.train_seconds for o in blockwise):.0f} s"
    )
    seconds = sum(o.train_seconds for o in outcomes)
    resumed = any(o.resumed_from for o in outcomes)
    print(
        f"supernet of {SPACE.name} ({SPACE.count()} students): {args.supernet_steps} steps on "
        f"{args.text_sentences:,} unlabelled sentences, trained in {seconds:.0f} s"
        + (" (earlier run; this call only loaded it)" if resumed else "")
        + f" [call {time.perf_counter() - started:.0f} s]"
    )
    return {"files": files, "teacher": teacher, "datasets": datasets, "supernet_seconds": seconds}


def ranking(args: argparse.Namespace, ready: dict[str, Any]) -> dict[str, Any]:
    teacher, files, datasets = ready["teacher"], ready["files"], ready["datasets"]
    bank = load_bank(Path(args.data) / "supernet")
    blockwise_bank = load_bank(Path(args.data) / "supernet-blockwise")
    scorer = TaskScorer(teacher, datasets)
    sample = teacher.encoder.encode(list(demo_texts(256, seed=7)))
    held_out = teacher.encoder.encode(list(demo_texts(512, seed=11)))  # unseen unlabelled sentences
    floors = {
        "untrained (random init)": new_supernet(
            teacher.model, SPACE, sample, SupernetConfig(init="random")
        ).eval(),
        "untrained (ETD init)": new_supernet(teacher.model, SPACE, sample, SupernetConfig()).eval(),
    }
    finetune = DistillConfig(
        steps=args.finetune_steps, max_examples=2000, checkpoint_every=0, warmup_fraction=0.0, seed=0
    )
    rows = []
    for arch in spread_students(SPACE, args.students):
        served = student_for_teacher(arch, teacher.arch)
        _, student = bank.extract(arch)
        row: dict[str, Any] = {"arch": name(arch), "params": count_parameters(student)}
        net = bank.find(arch)[1].net
        loss_fn = AgnosticLoss(teacher.arch, net.max_arch, SupernetConfig())
        loss = agnostic_loss(net, served, reference_teacher(teacher.model, net), loss_fn, held_out)
        row["supernet agnostic"] = -loss  # higher is better, as for accuracy
        block_net = blockwise_bank.find(arch)[1].net
        row["blockwise supernet agnostic"] = -blockwise_loss(
            block_net, served, reference_teacher(teacher.model, block_net), None, held_out
        )
        row["blockwise supernet direct"] = scorer.direct(blockwise_bank.extract(arch)[1]).accuracy
        row["supernet direct"] = scorer.direct(student).accuracy
        row["supernet finetune"] = scorer.finetuned(student, finetune).accuracy
        for label, net in floors.items():
            row[f"{label} direct"] = scorer.direct(net.extract(served)).accuracy
            row[f"{label} finetune"] = scorer.finetuned(net.extract(served), finetune).accuracy
        for seed in range(args.seeds):
            out = Path(args.data) / "standalone" / f"{name(arch).replace('/', '-')}-seed{seed}"
            outcome = distill_student(
                files.teacher, files.train, arch, out,
                DistillConfig(epochs=args.standalone_epochs, seed=seed),
                dev_path=files.dev, int8=False, teacher=teacher, datasets=datasets,
            )  # fmt: skip
            row[f"stand-alone seed {seed}"] = outcome.student.accuracy
        row["stand-alone mean"] = statistics.fmean(row[f"stand-alone seed {s}"] for s in range(args.seeds))
        rows.append(row)
        print(
            f"  {row['arch']:>16}: "
            + "  ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float))
        )
    truth = [r["stand-alone mean"] for r in rows]
    readings = [k for k in rows[0] if k.endswith(("agnostic", "direct", "finetune"))]
    best = max(truth)
    result: dict[str, Any] = {"students": rows, "teacher_accuracy": scorer.teacher_quality.accuracy}
    taus = {}
    print(f"\nKendall τ against stand-alone accuracy (mean of {args.seeds} seeds) over {len(rows)} students:")
    for key in [*readings, "params"]:
        values = [float(r[key]) for r in rows]
        tau = kendall_tau(values, truth)
        top = max(range(len(rows)), key=lambda i: (values[i], -i))
        regret = best - truth[top]
        taus[key] = {"tau": tau, "top_pick": rows[top]["arch"], "regret": regret}
        label = "parameter count (baseline)" if key == "params" else key
        print(
            f"  {label:>36}: τ {tau:+.3f}   top pick {rows[top]['arch']:>16}, "
            f"regret {regret * 100:.1f} points"
        )
    result["taus"] = taus
    if args.seeds >= 2:
        a = [r["stand-alone seed 0"] for r in rows]
        b = [r["stand-alone seed 1"] for r in rows]
        ceiling = kendall_tau(a, b)
        seed_sd = math.sqrt(statistics.fmean((x - y) ** 2 for x, y in zip(a, b, strict=True)) / 2)
        spread = max(truth) - min(truth)
        conclusive = spread >= 3 * seed_sd
        result.update(ceiling_tau=ceiling, seed_sd=seed_sd, spread=spread, conclusive=conclusive)
        print(f"  {'seed 0 vs seed 1 (ceiling)':>36}: τ {ceiling:+.3f}")
        print(
            f"stand-alone accuracies spread {spread * 100:.1f} points; seed standard deviation "
            f"{seed_sd * 100:.2f} points: " + ("conclusive" if conclusive else "INCONCLUSIVE (spread < 3 sd)")
        )
        for key in ("supernet direct", "supernet finetune"):
            within = taus[key]["regret"] <= seed_sd
            print(f"  top pick of {key}: regret {'within' if within else 'beyond'} one seed sd")
    return result


def speed(args: argparse.Namespace, ready: dict[str, Any]) -> dict[str, Any]:
    files = ready["files"]
    data = Path(args.data)
    latency = FlopsLatency()

    def search(objective: Any, trials: int, label: str) -> float:
        db = data / f"speed-{label}.db"
        db.unlink(missing_ok=True)
        started = time.perf_counter()
        run_search(
            SearchSettings(trials=trials, sampler="tpe", seed=0), SPACE, objective, latency,
            storage=f"sqlite:///{db.resolve()}", study_name=label,
        )  # fmt: skip
        return time.perf_counter() - started

    loading = time.perf_counter()
    oneshot = SupernetAccuracy(data / "supernet", files.teacher, files.train, files.dev, scoring="direct")
    loading = time.perf_counter() - loading
    oneshot_s = search(oneshot, args.trials, "supernet")
    proxy = ProxyDistillation(
        files.teacher, files.train, files.dev, DistillConfig.proxy(steps=DEMO_PROXY_STEPS)
    )
    proxy_s = search(proxy, args.proxy_trials, "proxy")
    per_trial = proxy_s / args.proxy_trials
    scaled = per_trial * args.trials
    speedup = scaled / oneshot_s
    with_training = scaled / (oneshot_s + ready["supernet_seconds"])
    print(
        f"\n{args.trials}-trial search, supernet evaluator (direct): {oneshot_s:.1f} s "
        f"({oneshot_s / args.trials * 1000:.0f} ms/trial; loading the supernet and data {loading:.1f} s)\n"
        f"per-trial proxy distillation ({DEMO_PROXY_STEPS} steps): {args.proxy_trials} trials in "
        f"{proxy_s:.1f} s "
        f"({per_trial:.2f} s/trial), scaled to {args.trials} trials: {scaled:.0f} s\n"
        f"speed-up at equal trials: {speedup:.1f}x; counting the supernet's one-off training "
        f"({ready['supernet_seconds']:.0f} s): {with_training:.1f}x"
    )
    return {
        "trials": args.trials,
        "supernet_search_s": oneshot_s,
        "proxy_trials": args.proxy_trials,
        "proxy_search_s": proxy_s,
        "proxy_scaled_s": scaled,
        "speedup": speedup,
        "speedup_with_training": with_training,
        "supernet_training_s": ready["supernet_seconds"],
    }


def useful(args: argparse.Namespace, ready: dict[str, Any]) -> dict[str, Any]:
    import torch

    teacher, datasets = ready["teacher"], ready["datasets"]
    bank = load_bank(Path(args.data) / "supernet")
    students = spread_students(SPACE, args.students)
    arch = students[len(students) // 2]
    served = student_for_teacher(arch, teacher.arch)
    dev = encode(teacher, datasets[1])
    unlabelled = teacher.encoder.encode(list(demo_texts(args.text_sentences)))
    print(
        f"\nfine-tuning {name(arch)} on few labels (dev accuracy, {len(dev)} examples; "
        f"mean ± sd of {args.label_seeds} seeds):"
    )
    result: dict[str, Any] = {"arch": name(arch), "rows": {}}
    for labels in args.label_counts:
        runs: dict[str, list[float]] = {
            "random init": [],
            "supernet (task-agnostic)": [],
            "CVT (random init)": [],
        }
        for seed in range(args.label_seeds):
            labelled = encode(teacher, datasets[0].subset(labels, seed))
            config = DistillConfig(
                steps=args.label_steps, batch_size=32, learning_rate=3e-4, warmup_fraction=0.1,
                losses=LossWeights(logits=0.0, labels=1.0), checkpoint_every=0, seed=seed,
            )  # fmt: skip
            runs["random init"].append(evaluate(train(None, served, labelled, config).student, dev).accuracy)
            start = bank.extract(arch)[1]
            with torch.no_grad():  # a fresh head: the teacher's head would carry its labels
                for layer in (start.classifier, start.bert.pooler.dense):
                    torch.nn.init.normal_(layer.weight, std=0.02)
                    torch.nn.init.zeros_(layer.bias)
            tuned = train(None, served, labelled, config, initial=start).student
            runs["supernet (task-agnostic)"].append(evaluate(tuned, dev).accuracy)
            cvt = train_cvt(served, labelled, unlabelled, config, num_labels=teacher.model.config.num_labels)
            runs["CVT (random init)"].append(evaluate(cvt.student, dev).accuracy)
        rows = {
            k: {"mean": statistics.fmean(v), "sd": statistics.pstdev(v), "runs": v} for k, v in runs.items()
        }
        result["rows"][str(labels)] = rows
        gain = rows["supernet (task-agnostic)"]["mean"] - rows["random init"]["mean"]
        print(
            f"  {labels:>5} labels: "
            + "   ".join(f"{k} {r['mean'] * 100:.1f} ± {r['sd'] * 100:.1f}" for k, r in rows.items())
            + f"   supernet - random: {gain * 100:+.1f} points"
        )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=".latbench-bench/oneshot")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections among {', '.join(SECTIONS)}")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--supernet-steps", type=int, default=SupernetConfig().steps)
    parser.add_argument("--finetune-steps", type=int, default=50)
    parser.add_argument("--standalone-epochs", type=float, default=1.0, help="the demo's final distillation")
    parser.add_argument("--text-sentences", type=int, default=12_000)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--proxy-trials", type=int, default=20)
    parser.add_argument(
        "--label-counts", type=lambda t: tuple(int(x) for x in t.split(",")), default=(200, 2000)
    )
    parser.add_argument("--label-seeds", type=int, default=3)
    parser.add_argument("--label-steps", type=int, default=300)
    parser.add_argument("--train-examples", type=int, default=12_000)
    parser.add_argument("--dev-examples", type=int, default=1_000)
    parser.add_argument("--teacher-steps", type=int, default=1_500)
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose among {', '.join(SECTIONS)}")
    ready = prepare(args)
    figures: dict[str, Any] = {"supernet_training_s": ready["supernet_seconds"]}
    if "ranking" in wanted:
        figures["ranking"] = ranking(args, ready)
    if "speed" in wanted:
        figures["speed"] = speed(args, ready)
    if "useful" in wanted:
        figures["useful"] = useful(args, ready)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
