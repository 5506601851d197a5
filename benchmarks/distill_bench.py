"""Distillation benchmark on the built-in demo task.

    .venv/bin/python benchmarks/distill_bench.py [--data DIR] [--only SECTION,...] [--json FILE]

Sections (each prints its figures; everything is written under ``--data``, default
``.latbench-bench/distill``, and reused by a rerun):

* **teacher**: the demo teacher's dev accuracy (trained on first use, ~3 minutes here).
* **speedups**: a grid of students no wider than the teacher, measured side by side with
  the teacher on onnxruntime-cpu (batch 1, sequence ``--seq``; medians with IQR); for
  2x, 3x and 5x the largest student at least that much faster is distilled in full
  (ETD initialisation, logits + hidden-state losses) and its accuracy, share of the
  teacher's accuracy, label and probability loyalty and INT8 accuracy are printed.
* **etd-vs-random**: the 3x student distilled from ETD and from random initialisation,
  evaluated every 50 steps: steps to reach 95% of the teacher's accuracy.
* **proxy-rank**: 10 random students from a space around the teacher, each distilled in
  proxy mode (300 steps on 2,000 examples) and in full; Kendall's tau between the two
  rankings by dev accuracy says how far a search can trust the proxy.

Run it alone: anything else on the machine is noise in the latency figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from latbench.arch import Arch, Workload
from latbench.backends.registry import default_registry
from latbench.db import default_worker
from latbench.distill.checkpoint import load_checkpoint
from latbench.distill.data import load_dataset
from latbench.distill.demo_task import (
    DEMO_DEV_EXAMPLES,
    DEMO_TEACHER_STEPS,
    DEMO_TRAIN_EXAMPLES,
    write_demo_task,
)
from latbench.distill.pipeline import distill_student, encode
from latbench.distill.settings import DistillConfig, LossWeights
from latbench.distill.trainer import evaluate
from latbench.fingerprint import collect
from latbench.profile import measure_specs
from latbench.search.space import SearchSpace
from latbench.specs import EncoderSpec
from latbench.target import Target
from latbench.timing import ProtocolSettings

SECTIONS = ("teacher", "speedups", "etd-vs-random", "proxy-rank")
RANK_ARCHS = 10
SPEEDUPS = (2.0, 3.0, 5.0)
FULL = DistillConfig(
    epochs=3.0,
    batch_size=32,
    learning_rate=5e-4,
    losses=LossWeights(logits=1.0, hidden=1.0),
    dropout=0.0,
    checkpoint_every=250,
)
STUDENT_GRID = SearchSpace(
    name="demo-students", layers=(1, 2, 3, 4), hidden=(32, 64, 96, 128), heads=(2, 4), ffn_ratios=(2.0, 4.0)
)
RANK_SPACE = SearchSpace(
    name="demo-rank", layers=(1, 2, 3), hidden=(32, 64, 128), heads=(2, 4), ffn_ratios=(2.0, 4.0)
)


def name(arch: Arch) -> str:
    return f"{arch.num_layers}L/{arch.hidden}H/{arch.heads[0]}A/{arch.ffn[0]}F"


def log(text: str) -> None:
    print(text, flush=True)


def grid(space: SearchSpace, vocab_size: int) -> list[Arch]:
    archs = []
    for layers in space.layers:
        for hidden in space.hidden:
            for heads in space.heads:
                for ratio in space.ffn_ratios:
                    archs.append(
                        Arch.uniform(layers, hidden, heads, int(hidden * ratio), vocab_size=vocab_size)
                    )
    return archs


def measure(archs: Sequence[Arch], seq: int) -> list[tuple[float, float]]:
    """(median ms, IQR ms) of each encoder, measured side by side in one run."""
    backend = default_registry().get_available("onnxruntime-cpu")
    target = backend.normalize(Target.parse("onnxruntime-cpu:threads=1"))
    fingerprint = collect(backend.fingerprint_extras())
    specs = [EncoderSpec(a, Workload(1, seq)) for a in archs]
    results = measure_specs(backend, target, fingerprint, specs, ProtocolSettings(), worker=default_worker())
    return [(m.stats.median_s * 1e3, m.stats.iqr_s * 1e3) for m in results]


def distill(files: Any, arch: Arch, out: Path, config: DistillConfig, int8: bool = False) -> dict[str, Any]:
    distill_student(files.teacher, files.train, arch, out, config, dev_path=files.dev, int8=int8)
    return json.loads((out / "metrics.json").read_text())


def steps_to(history: Sequence[dict[str, float]], accuracy: float) -> int | None:
    return next((int(row["step"]) for row in history if row["dev_accuracy"] >= accuracy), None)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=".latbench-bench/distill", help="work folder (reused by a rerun)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections among {', '.join(SECTIONS)}")
    parser.add_argument("--seq", type=int, default=128, help="sequence length of the latency workload [128]")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument(
        "--train-examples", type=int, default=DEMO_TRAIN_EXAMPLES, help="demo training set size [%(default)s]"
    )
    parser.add_argument(
        "--dev-examples", type=int, default=DEMO_DEV_EXAMPLES, help="demo dev set size [%(default)s]"
    )
    parser.add_argument(
        "--teacher-steps",
        type=int,
        default=DEMO_TEACHER_STEPS,
        help="demo teacher steps [%(default)s]",
    )
    parser.add_argument("--full-steps", type=int, default=0, help="steps of a full distillation [3 epochs]")
    parser.add_argument("--proxy-steps", type=int, default=300, help="steps of a proxy distillation [300]")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    torch.set_num_threads(2)
    root = Path(args.data)
    files = write_demo_task(
        root / "task",
        train_examples=args.train_examples,
        dev_examples=args.dev_examples,
        teacher_steps=args.teacher_steps,
    )
    full = replace(FULL, steps=args.full_steps)
    proxy = DistillConfig.proxy(steps=args.proxy_steps, **_proxy_overrides())
    teacher = load_checkpoint(files.teacher)
    figures: dict[str, Any] = {}

    dev = encode(teacher, load_dataset(files.dev, label_names=teacher.label_names))
    teacher_acc = evaluate(teacher.model, dev).accuracy
    figures["teacher"] = {"arch": teacher.arch.to_dict(), "dev_accuracy": teacher_acc}
    log(f"teacher {teacher.arch.num_layers}L/{teacher.arch.hidden}H: dev accuracy {teacher_acc:.3f}")

    chosen: dict[float, Arch] = {}
    if {"speedups", "etd-vs-random"} & set(sections):
        candidates = grid(STUDENT_GRID, teacher.arch.vocab_size)
        archs = [teacher.arch, *candidates]
        timings = measure(archs, args.seq)
        t_med, t_iqr = timings[0]
        log(f"latency b=1 s={args.seq} onnxruntime-cpu threads=1: teacher {t_med:.3f} ms (IQR {t_iqr:.3f})")
        speed = [
            (t_med / med, arch, med, iqr) for arch, (med, iqr) in zip(candidates, timings[1:], strict=True)
        ]
        for target in SPEEDUPS:
            fast = [s for s in speed if s[0] >= target]
            if fast:
                chosen[target] = max(fast, key=lambda s: s[1].params)[1]
        rows = []
        for target, arch in chosen.items():
            ratio, _, med, iqr = next(s for s in speed if s[1] == arch)
            row = {
                "target_speedup": target,
                "speedup": ratio,
                "latency_ms": med,
                "iqr_ms": iqr,
                "arch": arch.to_dict(),
            }
            if "speedups" in sections:
                m = distill(files, arch, root / f"speedup-{target:g}x", full, int8=True)
                q = m["student"]["quality"]
                row |= {
                    "accuracy": q["accuracy"],
                    "retained": q["accuracy"] / teacher_acc,
                    "label_loyalty": q["label_loyalty"],
                    "probability_loyalty": q["probability_loyalty"],
                    "int8_accuracy": m["int8"]["quality"]["accuracy"],
                }
                log(
                    f"{target:g}x: {name(arch)} measured "
                    f"{ratio:.2f}x faster ({med:.3f} ms, IQR {iqr:.3f}); accuracy {q['accuracy']:.3f} "
                    f"({100 * row['retained']:.1f}% of teacher), label loyalty {q['label_loyalty']:.3f}, "
                    f"probability loyalty {q['probability_loyalty']:.3f}, "
                    f"INT8 accuracy {row['int8_accuracy']:.3f}"
                )
            rows.append(row)
        figures["speedups"] = rows

    if "etd-vs-random" in sections and 3.0 in chosen:
        arch = chosen[3.0]
        goal = 0.95 * teacher_acc
        result = {}
        for init in ("etd", "random"):
            m = distill(files, arch, root / f"curve-{init}", replace(full, init=init, eval_every=50))
            history = m["training"]["history"]
            result[init] = {"steps_to_95": steps_to(history, goal),
                            "final_accuracy": history[-1]["dev_accuracy"],
                            "curve": [(r["step"], r["dev_accuracy"]) for r in history]}  # fmt: skip
            log(f"{init}: steps to 95% of teacher accuracy ({goal:.3f}): {result[init]['steps_to_95']}; "
                f"final {history[-1]['dev_accuracy']:.3f}")  # fmt: skip
        etd, rnd = result["etd"]["steps_to_95"], result["random"]["steps_to_95"]
        if etd and rnd:
            log(f"ETD needs {100 * (1 - etd / rnd):.0f}% fewer steps than random initialisation")
        figures["etd_vs_random"] = result

    if "proxy-rank" in sections:
        rng = random.Random(0)
        archs = []
        while len(archs) < RANK_ARCHS:
            arch = RANK_SPACE.sample(rng)
            arch = Arch.from_dict({**arch.to_dict(), "vocab_size": teacher.arch.vocab_size})
            if arch not in archs:
                archs.append(arch)
        proxy_acc, full_acc = [], []
        for i, arch in enumerate(archs):
            p = distill(files, arch, root / f"rank-{i}-proxy", proxy)
            f = distill(files, arch, root / f"rank-{i}-full", full)
            proxy_acc.append(p["student"]["quality"]["accuracy"])
            full_acc.append(f["student"]["quality"]["accuracy"])
            log(f"rank {i}: {name(arch)} proxy "
                f"{proxy_acc[-1]:.3f} full {full_acc[-1]:.3f}")  # fmt: skip
        tau = kendall_tau(proxy_acc, full_acc)
        spread = statistics.pstdev(full_acc)
        log(
            f"Kendall tau proxy vs full over {len(archs)} students: {tau:.3f} "
            f"(full accuracy spread sd {spread:.3f})"
        )
        figures["proxy_rank"] = {
            "tau": tau,
            "proxy": proxy_acc,
            "full": full_acc,
            "archs": [a.to_dict() for a in archs],
        }

    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _proxy_overrides() -> dict[str, Any]:
    return {
        "batch_size": FULL.batch_size,
        "learning_rate": FULL.learning_rate,
        "losses": FULL.losses,
        "dropout": 0.0,
    }


if __name__ == "__main__":
    sys.exit(main())
