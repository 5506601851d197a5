"""OpSpec / BlockSpec / EncoderSpec: canonical keys, dict round trips, op lists."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from latbench.arch import Arch, LayerShape, Workload
from latbench.errors import ConfigError, InvalidArchError
from latbench.specs import (
    LAYER_OPS,
    OP_DEPENDS,
    BlockSpec,
    EncoderSpec,
    OpSpec,
    encoder_ops,
    layer_ops,
    spec_from_dict,
    with_workload,
)

W = Workload(1, 128)
LAYER = LayerShape(256, 4, 1024)


# --- OpSpec canonicalisation --------------------------------------------------------------
def test_qkv_proj_key_does_not_depend_on_heads_or_ffn() -> None:
    a = OpSpec("qkv_proj", W, hidden=256, heads=4, ffn=1024)
    b = OpSpec("qkv_proj", W, hidden=256, heads=8, ffn=512)
    c = OpSpec("qkv_proj", W, hidden=256)
    assert a == b == c
    assert a.key == b.key == c.key
    assert (a.heads, a.ffn, a.vocab_size) == (0, 0, 0)
    assert len({a, b, c}) == 1
    assert a.key != OpSpec("qkv_proj", W, hidden=512).key


def test_softmax_ignores_hidden_and_ffn_but_not_heads() -> None:
    a = OpSpec("softmax", W, hidden=256, heads=4, ffn=1024)
    b = OpSpec("softmax", W, hidden=768, heads=4, ffn=3072)
    assert a == b and a.key == b.key
    assert a.hidden == 0 and a.heads == 4
    assert a.key != OpSpec("softmax", W, hidden=256, heads=8).key


@pytest.mark.parametrize("op", sorted(OP_DEPENDS))
def test_each_op_keeps_exactly_the_dimensions_it_depends_on(op: str) -> None:
    spec = OpSpec(op, W, hidden=256, heads=4, ffn=1024, vocab_size=500)
    kept = {dim for dim in ("hidden", "heads", "ffn") if getattr(spec, dim)}
    assert kept == OP_DEPENDS[op]
    expected = {"hidden": 256, "heads": 4, "ffn": 1024}
    for dim in kept:
        assert getattr(spec, dim) == expected[dim]


def test_embedding_keeps_vocab_size_and_defaults_it() -> None:
    small = OpSpec("embedding", W, hidden=256, vocab_size=1000)
    assert small.vocab_size == 1000
    assert small.key != OpSpec("embedding", W, hidden=256, vocab_size=2000).key
    assert OpSpec("embedding", W, hidden=256).vocab_size == 30522
    # vocab_size is meaningless for other ops and does not split their keys
    assert OpSpec("out_proj", W, hidden=256, vocab_size=1000).vocab_size == 0
    assert OpSpec("out_proj", W, 256, vocab_size=7) == OpSpec("out_proj", W, 256, vocab_size=9)


def test_unknown_operator() -> None:
    with pytest.raises(ConfigError) as exc:
        OpSpec("conv2d", W, hidden=256)
    message = str(exc.value)
    assert "\n" not in message
    assert "unknown operator 'conv2d'" in message
    assert "qkv_proj" in message  # lists the known ones


@pytest.mark.parametrize(
    ("op", "kwargs", "shown"),
    [
        ("qkv_proj", {}, "operator qkv_proj needs a positive hidden, got 0"),
        ("ffn_down", {"hidden": 256}, "operator ffn_down needs a positive ffn, got 0"),
        ("softmax", {"hidden": 256}, "operator softmax needs a positive heads, got 0"),
        ("attn_scores", {"hidden": 256, "heads": -4}, "needs a positive heads, got -4"),
        ("out_proj", {"hidden": 256.0}, "needs a positive hidden, got 256.0"),
        ("attn_context", {"hidden": 256, "heads": 3}, "hidden 256 is not divisible by 3 heads"),
    ],
)
def test_missing_or_invalid_dimensions(op: str, kwargs: dict, shown: str) -> None:
    with pytest.raises(InvalidArchError) as exc:
        OpSpec(op, W, **kwargs)
    assert shown in str(exc.value)
    assert "\n" not in str(exc.value)


def test_softmax_does_not_check_divisibility_it_does_not_depend_on() -> None:
    # softmax's shape is (batch, heads, seq, seq): hidden is dropped before any check
    assert OpSpec("softmax", W, hidden=100, heads=3).heads == 3


# --- keys ---------------------------------------------------------------------------------
def test_keys_differ_for_different_workloads() -> None:
    workloads = [Workload(1, 128), Workload(2, 128), Workload(1, 64), Workload(1, 128, "fp16")]
    for make in (
        lambda w: OpSpec("qkv_proj", w, hidden=256),
        lambda w: BlockSpec(LAYER, w),
        lambda w: EncoderSpec(Arch.uniform(2, 256, 4, 1024), w),
    ):
        keys = [make(w).key for w in workloads]
        assert len(set(keys)) == len(workloads)
        assert make(Workload(1, 128)).key == keys[0]  # and are stable


def test_keys_differ_for_different_contexts_and_kinds() -> None:
    model = BlockSpec(LAYER, W, "model")
    isolated = BlockSpec(LAYER, W, "isolated")
    assert model != isolated and model.key != isolated.key
    assert BlockSpec(LAYER, W).context == "model"
    assert BlockSpec(LAYER, W).key == model.key
    encoder = EncoderSpec(Arch.uniform(1, 256, 4, 1024), W)
    assert len({model.key, isolated.key, encoder.key, OpSpec("qkv_proj", W, 256).key}) == 4


def test_keys_differ_for_different_layer_shapes() -> None:
    keys = {
        BlockSpec(LayerShape(256, 4, 1024), W).key,
        BlockSpec(LayerShape(256, 8, 1024), W).key,
        BlockSpec(LayerShape(256, 4, 512), W).key,
        BlockSpec(LayerShape(512, 4, 1024), W).key,
    }
    assert len(keys) == 4


def test_key_is_a_short_hex_digest() -> None:
    key = BlockSpec(LAYER, W).key
    assert len(key) == 20
    int(key, 16)


def test_block_spec_with_a_bad_context() -> None:
    with pytest.raises(ConfigError) as exc:
        BlockSpec(LAYER, W, "cold")
    message = str(exc.value)
    assert "\n" not in message
    assert message == "block context must be one of isolated, model, got 'cold'"


def test_encoder_spec_checks_the_sequence_fits() -> None:
    arch = Arch.uniform(2, 64, 4, 128, max_positions=64)
    with pytest.raises(InvalidArchError, match="sequence length 128 exceeds"):
        EncoderSpec(arch, Workload(1, 128))


# --- dict round trips ---------------------------------------------------------------------
ALL_SPECS = [
    *(OpSpec(op, Workload(2, 64, "fp16"), 384, 6, 1536, 1234) for op in OP_DEPENDS),
    BlockSpec(LAYER, W, "model"),
    BlockSpec(LayerShape(384, 12, 768), Workload(4, 32), "isolated"),
    EncoderSpec(Arch.uniform(2, 128, 4, 512, vocab_size=99, max_positions=256), W),
    EncoderSpec(Arch(hidden=96, heads=(3, 6, 2), ffn=(100, 384, 48), type_vocab_size=0), W),
]


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.label)
def test_spec_from_dict_round_trip(spec: OpSpec | BlockSpec | EncoderSpec) -> None:
    data = spec.to_dict()
    assert data["kind"] == spec.kind
    again = spec_from_dict(json.loads(json.dumps(data)))
    assert again == spec
    assert type(again) is type(spec)
    assert again.key == spec.key


def test_spec_from_dict_unknown_kind() -> None:
    data = BlockSpec(LAYER, W).to_dict() | {"kind": "graph"}
    with pytest.raises(ConfigError, match="unknown spec kind 'graph'"):
        spec_from_dict(data)


def test_labels_name_the_spec() -> None:
    assert OpSpec("attn_scores", Workload(2, 64), 256, 4).label == (
        "op:attn_scores[hidden=256,heads=4] b=2 s=64"
    )
    assert BlockSpec(LAYER, W, "isolated").label == "block[256/4/1024,isolated] b=1 s=128"
    uniform = EncoderSpec(Arch.uniform(3, 256, 4, 1024), W)
    assert uniform.label == "encoder[L=3,H=256,A=4,F=1024] b=1 s=128"
    mixed = EncoderSpec(Arch(hidden=256, heads=(4, 8), ffn=(1024, 1024)), W)
    assert mixed.label == "encoder[L=2,H=256,A=var,F=1024] b=1 s=128"


def test_with_workload_replaces_only_the_workload() -> None:
    spec = BlockSpec(LAYER, W, "isolated")
    moved = with_workload(spec, Workload(8, 16))
    assert moved == BlockSpec(LAYER, Workload(8, 16), "isolated")


# --- op lists -----------------------------------------------------------------------------
def test_layer_ops_are_the_layers_operators_with_counts() -> None:
    ops = layer_ops(LAYER, W)
    assert [(spec.op, n) for spec, n in ops] == list(LAYER_OPS)
    counts = {spec.op: n for spec, n in ops}
    assert counts["add_layernorm"] == 2
    assert all(n == 1 for op, n in counts.items() if op != "add_layernorm")
    assert "embedding" not in counts
    assert all(spec.workload == W for spec, _ in ops)
    assert sum(n for _, n in ops) == 9


def test_encoder_ops_of_a_uniform_arch() -> None:
    arch = Arch.uniform(4, 256, 4, 1024, vocab_size=999)
    ops = encoder_ops(arch, W)
    assert len(ops) == len(LAYER_OPS) + 1  # equal ops merged across the 4 layers
    assert len({spec for spec, _ in ops}) == len(ops)
    counts = {spec.op: n for spec, n in ops}
    assert counts["embedding"] == 1
    assert counts["add_layernorm"] == 8
    assert counts["qkv_proj"] == counts["softmax"] == counts["ffn_down"] == 4
    (embedding,) = [spec for spec, _ in ops if spec.op == "embedding"]
    assert embedding == OpSpec("embedding", W, 256, vocab_size=999)


def test_encoder_ops_merges_only_equal_ops_of_heterogeneous_layers() -> None:
    arch = Arch(hidden=256, heads=(4, 8, 4), ffn=(1024, 1024, 512))
    ops = encoder_ops(arch, W)
    by_op: dict[str, list[tuple[OpSpec, int]]] = {}
    for spec, n in ops:
        by_op.setdefault(spec.op, []).append((spec, n))
    # hidden-only ops: one spec for all three layers
    assert [n for _, n in by_op["qkv_proj"]] == [3]
    assert [n for _, n in by_op["out_proj"]] == [3]
    assert [n for _, n in by_op["add_layernorm"]] == [6]
    # head-dependent ops: split by heads (4 twice, 8 once)
    assert sorted((s.heads, n) for s, n in by_op["attn_scores"]) == [(4, 2), (8, 1)]
    assert sorted((s.heads, n) for s, n in by_op["softmax"]) == [(4, 2), (8, 1)]
    # ffn-dependent ops: split by FFN size (1024 twice, 512 once)
    assert sorted((s.ffn, n) for s, n in by_op["ffn_up_gelu"]) == [(512, 1), (1024, 2)]
    assert len(by_op["embedding"]) == 1
    # the merged counts add up to every op of every layer plus the embedding
    total = Counter()
    for spec, n in ops:
        total[spec.op] += n
    assert total == Counter({op: n * 3 for op, n in LAYER_OPS}) + Counter({"embedding": 1})
