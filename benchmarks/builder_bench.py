"""Does latbench's own encoder time like the model users export? (issue 20, item 3)

    .venv/bin/python benchmarks/builder_bench.py [--seq 128] [--samples 32] [--only NAME,...] [--json FILE]

For each published BERT-family configuration (BERT-base, the Turc et al. miniatures,
DistilBERT, TinyBERT, MiniLM, RoBERTa-base, ELECTRA-base), two ONNX graphs of the same
shape on onnxruntime-cpu (1 thread): latbench's encoder (``export_spec`` of its
``EncoderSpec``, the graph every profile and predictor rests on) and the model exported
from ``transformers`` as users deploy it (``latbench.user_models.export_hf_model``: random
weights from the config, input ids and attention mask, opset 17). Both are timed in one
interleaved run (``measure_group``: a noisy neighbour hits both alike), and the ratio of
latbench's median to the exported model's is printed per configuration with the spread of
the per-round ratios, then the share of configurations within ±3% (the goal) and ±10%.

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
from latbench.measurement import Stats, quantile
from latbench.specs import EncoderSpec
from latbench.target import Target
from latbench.timing import ProtocolSettings, measure_group
from latbench.user_models import export_hf_model, onnx_feeds

#: name -> (family, layers, hidden, heads, ffn)
CONFIGS: dict[str, tuple[str, int, int, int, int]] = {
    **{
        f"turc-L{n}-H{h}": ("bert", n, h, h // 64, 4 * h) for n in (2, 4, 6, 12) for h in (128, 256, 512, 768)
    },
    "bert-base": ("bert", 12, 768, 12, 3072),
    "distilbert-base": ("distilbert", 6, 768, 12, 3072),
    "tinybert-4L-312": ("bert", 4, 312, 12, 1200),
    "tinybert-6L-768": ("bert", 6, 768, 12, 3072),
    "minilm-L12-H384": ("bert", 12, 384, 12, 1536),
    "minilm-L6-H384": ("bert", 6, 384, 12, 1536),
    "roberta-base": ("roberta", 12, 768, 12, 3072),
    "electra-base": ("electra", 12, 768, 12, 3072),
}


def hf_config(family: str, layers: int, hidden: int, heads: int, ffn: int) -> Any:
    import transformers

    if family == "distilbert":
        return transformers.DistilBertConfig(n_layers=layers, dim=hidden, n_heads=heads, hidden_dim=ffn)
    cls = {"bert": transformers.BertConfig, "roberta": transformers.RobertaConfig,
           "electra": transformers.ElectraConfig}[family]  # fmt: skip
    extra = {"embedding_size": hidden} if family == "electra" else {}
    if family == "roberta":
        extra.update(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1)
    return cls(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        **extra,
    )


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


def compare(name: str, seq: int, settings: ProtocolSettings, target: Target) -> dict[str, Any]:
    import onnx
    import transformers

    family, *shape = CONFIGS[name]
    config = hf_config(family, *shape)
    model = transformers.AutoModel.from_config(config).eval()  # random weights: the shape is what times
    exported = export_hf_model(model, 1, seq)
    users = session(exported, onnx_feeds(onnx.load_from_string(exported), 1, seq), target)
    arch = Arch.from_hf_config(config)
    ours_model, ours_feeds, instances = export_spec(EncoderSpec(arch, Workload(1, seq)))
    assert instances == 1
    ours = session(ours_model, ours_feeds, target)
    theirs_sampled, ours_sampled = measure_group([users, ours], settings)
    per_round = _per_round_ratios(ours_sampled.times_s, theirs_sampled.times_s, settings.rounds)
    a, b = Stats.of(ours_sampled.times_s), Stats.of(theirs_sampled.times_s)
    return {
        "name": name,
        "family": family,
        "arch": arch.to_dict(),
        "latbench_ms": a.median_s * 1e3,
        "exported_ms": b.median_s * 1e3,
        "ratio": a.median_s / b.median_s,
        "ratio_min": a.min_s / b.min_s,
        "round_ratios": per_round,
    }


def _per_round_ratios(ours: tuple[float, ...], theirs: tuple[float, ...], rounds: int) -> list[float]:
    """Median ratio within each round (the samples come round by round, in order)."""
    n = min(len(ours), len(theirs)) // max(1, rounds)
    if n == 0:
        return []
    return [
        quantile(sorted(ours[r * n : (r + 1) * n]), 0.5) / quantile(sorted(theirs[r * n : (r + 1) * n]), 0.5)
        for r in range(rounds)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--only", help="comma-separated configuration names [all]")
    parser.add_argument("--json", default="benchmarks/results/builder.json")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    _, target = default_registry().resolve(Target.parse("onnxruntime-cpu:threads=1"))
    settings = ProtocolSettings.with_samples(args.samples)
    print(f"{len(names)} configurations at batch 1, sequence {args.seq} on {target}")
    print(
        f"    {'configuration':22s} {'latbench ms':>11s} {'exported ms':>11s} {'ratio':>7s} {'rounds':>15s}"
    )
    results = []
    for name in names:
        r = compare(name, args.seq, settings, target)
        results.append(r)
        spread = f"{min(r['round_ratios']):.3f}-{max(r['round_ratios']):.3f}" if r["round_ratios"] else ""
        print(
            f"    {name:22s} {r['latbench_ms']:11.3f} {r['exported_ms']:11.3f} "
            f"{r['ratio']:7.3f} {spread:>15s}",
            flush=True,
        )
    errors = [abs(r["ratio"] - 1) for r in results]
    within3 = sum(e <= 0.03 for e in errors) / len(errors)
    within10 = sum(e <= 0.10 for e in errors) / len(errors)
    median_ratio = quantile(sorted(r["ratio"] for r in results), 0.5)
    print(
        f"\nlatbench's encoder / the exported model: median ratio {median_ratio:.3f}, "
        f"{within3:.0%} within ±3% (goal: all), {within10:.0%} within ±10%"
    )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seq": args.seq, "target": str(target), "results": results}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
