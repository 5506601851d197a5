"""Does latbench's own encoder time like the model users export? (issue 20, item 3)

    .venv/bin/python benchmarks/builder_bench.py [--seq 128] [--samples 16] [--repeats 3]
        [--only NAME,...] [--json FILE]

For each published BERT-family configuration (``latbench.published``: BERT-base, the 24
Turc et al. miniatures, DistilBERT, TinyBERT, MiniLM, RoBERTa-base, ELECTRA-base), ONNX graphs of the same
shape on onnxruntime-cpu (1 thread): latbench's encoder (``export_spec`` of its
``EncoderSpec``, the graph every profile and predictor rests on) and the model exported
from ``transformers`` as users deploy it (``latbench.user_models.export_hf_model``: random
weights from the config, input ids and attention mask, opset 17); and, for comparison,
the fused form every profile measured before (``torch_modules.build``: one QKV
projection, no mask, static shapes). All three are timed in one interleaved run
(``measure_group``: a noisy neighbour hits them alike) with a second session of the
exported model, whose ratio to the first is the comparison's noise floor; ``--repeats``
such runs per configuration. Per configuration it prints the median over repeats of the
ratio of latbench's latency figure (the minimum) to the exported model's, with the
repeats' spread, the ratio of medians, the fused form's ratio and the A/A ratio; then the
share of configurations within ±3% (the goal) and ±10% for each.

Run it alone: anything else on the machine is noise in these figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from latbench.arch import Arch, Workload
from latbench.backends.onnxruntime_cpu import export_spec
from latbench.backends.registry import default_registry
from latbench.errors import ConfigError
from latbench.measurement import Stats, quantile
from latbench.published import PublishedModel, published
from latbench.specs import EncoderSpec
from latbench.target import Target
from latbench.timing import ProtocolSettings, measure_group
from latbench.user_models import export_hf_model, onnx_feeds


def session(model: bytes, feeds: dict[str, np.ndarray], target: Target):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    backend = default_registry().create("onnxruntime-cpu")
    s = ort.InferenceSession(model, backend.session_options(target), providers=["CPUExecutionProvider"])
    binding = s.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    for out in s.get_outputs():
        binding.bind_output(out.name)
    return lambda: s.run_with_iobinding(binding)


def compare(
    published_model: PublishedModel, seq: int, settings: ProtocolSettings, target: Target, repeats: int
) -> dict[str, Any]:
    import onnx
    import transformers

    from latbench.models.onnx_export import export_onnx
    from latbench.models.torch_modules import build

    config = published_model.hf_config()
    model = transformers.AutoModel.from_config(config).eval()  # random weights: the shape is what times
    exported = export_hf_model(model, 1, seq)
    exported_feeds = onnx_feeds(onnx.load_from_string(exported), 1, seq)
    users = session(exported, exported_feeds, target)
    # a second session of the same exported model: the A/A ratio is the comparison's noise floor
    again = session(exported, exported_feeds, target)
    arch = Arch.from_hf_config(config)
    spec = EncoderSpec(arch, Workload(1, seq))
    ours_model, ours_feeds, instances = export_spec(spec)
    assert instances == 1
    ours = session(ours_model, ours_feeds, target)
    # the form every profile measured before the deployed form: fused QKV, no mask, static shapes
    fused = build(spec)
    fused_feeds = {n: x.numpy() for n, x in zip(fused.input_names, fused.inputs, strict=True)}
    before = session(export_onnx(fused), fused_feeds, target)
    # Several interleaved comparisons, each with its own minimum: a slowdown that outlasts one
    # comparison's seconds moves one repeat's ratio, not the median of the repeats'.
    ratios: dict[str, list[float]] = {"ratio": [], "fused_ratio": [], "noise_ratio": [], "ratio_median": []}
    mins: dict[str, list[float]] = {"exported": [], "latbench": [], "fused": []}
    for _ in range(repeats):
        theirs_s, ours_s, before_s, again_s = (
            Stats.of(s.times_s) for s in measure_group([users, ours, before, again], settings)
        )
        ratios["ratio"].append(ours_s.min_s / theirs_s.min_s)
        ratios["fused_ratio"].append(before_s.min_s / theirs_s.min_s)
        ratios["noise_ratio"].append(again_s.min_s / theirs_s.min_s)
        ratios["ratio_median"].append(ours_s.median_s / theirs_s.median_s)
        for key, st in (("exported", theirs_s), ("latbench", ours_s), ("fused", before_s)):
            mins[key].append(st.min_s)
    return {
        "name": published_model.name,
        "family": published_model.family,
        "arch": arch.to_dict(),
        **{f"{key}_ms": min(values) * 1e3 for key, values in mins.items()},
        **{key: float(np.median(values)) for key, values in ratios.items()},
        "repeat_ratios": ratios["ratio"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--samples", type=int, default=16, help="samples per graph and repeat [16]")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per configuration [3]")
    parser.add_argument("--only", help="comma-separated configuration names [all]")
    parser.add_argument("--json", default="benchmarks/results/builder.json")
    args = parser.parse_args(argv)
    try:
        models = published(args.only)
    except ConfigError as exc:
        parser.error(str(exc))
    if args.samples < 1 or args.repeats < 1:
        parser.error("--samples and --repeats must be at least 1")
    _, target = default_registry().resolve(Target.parse("onnxruntime-cpu:threads=1"))
    settings = ProtocolSettings.with_samples(args.samples)
    print(f"{len(models)} configurations at batch 1, sequence {args.seq} on {target}, {args.repeats} repeats")
    print(
        f"    {'configuration':22s} {'exported ms':>11s} {'latbench ms':>11s} {'ratio':>7s} {'repeats':>13s}"
        f" {'median ratio':>12s} {'fused ratio':>11s} {'A/A ratio':>9s}"
    )
    results = []
    for model in models:
        r = compare(model, args.seq, settings, target, args.repeats)
        results.append(r)
        spread = f"{min(r['repeat_ratios']):.3f}-{max(r['repeat_ratios']):.3f}"
        print(
            f"    {model.name:22s} {r['exported_ms']:11.3f} {r['latbench_ms']:11.3f} {r['ratio']:7.3f} "
            f"{spread:>13s} {r['ratio_median']:12.3f} {r['fused_ratio']:11.3f} {r['noise_ratio']:9.3f}",
            flush=True,
        )
    for label, key in (
        ("latbench's encoder (deployed form)", "ratio"),
        ("the fused form (before)", "fused_ratio"),
        ("noise floor: the exported model again", "noise_ratio"),
    ):
        errors = [abs(r[key] - 1) for r in results]
        within3 = sum(e <= 0.03 for e in errors) / len(errors)
        within10 = sum(e <= 0.10 for e in errors) / len(errors)
        median_ratio = quantile(sorted(r[key] for r in results), 0.5)
        worst = max(results, key=lambda r: abs(r[key] - 1))
        print(
            f"{label} / the exported model: median ratio {median_ratio:.3f}, {within3:.0%} within ±3% "
            f"(goal: all), {within10:.0%} within ±10%, worst {worst['name']} {worst[key]:.3f}"
        )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seq": args.seq, "target": str(target), "results": results}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
