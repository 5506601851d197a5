"""A fixed head size (AutoDistil's 64-wide heads): attention ``heads * head_size`` wide,
which need not equal the hidden size.

Covers the value types (``LayerShape``, ``Arch``), their parameter and FLOP counts (against
latbench's own torch encoder and ``FlopCounterMode``), the operator and block specs and
their keys, and the torch modules built from them (against per-head math and ONNX Runtime).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from latbench.arch import Arch, LayerShape, Workload, iter_layer_shapes
from latbench.errors import InvalidArchError
from latbench.keys import content_key
from latbench.models.onnx_export import export_onnx
from latbench.models.torch_modules import Embeddings, Encoder, EncoderLayer, LayerStack, build
from latbench.specs import (
    LAYER_OPS,
    BlockSpec,
    EncoderSpec,
    OpSpec,
    block_bytes,
    block_flops,
    encoder_ops,
    layer_ops,
    spec_from_dict,
)

SMALL = {"vocab_size": 100, "max_positions": 64}
W = Workload(2, 16)
ODD = LayerShape(128, 7, 256, 64)  # 7 heads do not divide 128: only a fixed head size allows it
MIXED = Arch(hidden=256, heads=(4, 2, 8), ffn=(512, 128, 300), head_size=64, **SMALL)  # layer 0 is BERT's


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- LayerShape and Arch validation --------------------------------------------------------
def test_heads_not_dividing_hidden_need_a_head_size() -> None:
    with pytest.raises(InvalidArchError, match=r"not divisible by 7 heads.*or set a head_size"):
        LayerShape(128, 7, 256)
    assert (ODD.head_size, ODD.head_dim, ODD.attn_width) == (64, 64, 448)
    with pytest.raises(InvalidArchError, match=r"layer 0: .*not divisible by 7 heads"):
        Arch.uniform(2, 128, 7, 256, **SMALL)
    arch = Arch.uniform(2, 128, 7, 256, head_size=64, **SMALL)
    assert arch.head_size == 64
    assert arch.layers == (ODD, ODD)
    assert [layer.attn_width for layer in arch.layers] == [448, 448]


def test_a_head_size_of_hidden_over_heads_is_bert_geometry() -> None:
    same = LayerShape(256, 4, 1024, 64)
    assert same.head_size == 0
    assert same == LayerShape(256, 4, 1024) and hash(same) == hash(LayerShape(256, 4, 1024))
    assert (same.head_dim, same.attn_width, same.params) == (64, 256, LayerShape(256, 4, 1024).params)
    arch = Arch.uniform(2, 256, 4, 1024, head_size=64, **SMALL)
    assert arch.head_size == 0
    assert arch == Arch.uniform(2, 256, 4, 1024, **SMALL)
    assert arch.to_dict() == Arch.uniform(2, 256, 4, 1024, **SMALL).to_dict()
    assert arch.to_hf_dict() == Arch.uniform(2, 256, 4, 1024, **SMALL).to_hf_dict()
    # a head size only changes anything where it differs from hidden / heads
    assert LayerShape(256, 4, 1024, 32) != LayerShape(256, 4, 1024)
    assert LayerShape(256, 4, 1024, 32).attn_width == 128


@pytest.mark.parametrize("bad", [-1, -64, True, False, 64.0, "64", None])
def test_a_head_size_must_be_a_non_negative_integer(bad: object) -> None:
    with pytest.raises(InvalidArchError, match="head_size must be a"):
        LayerShape(128, 4, 256, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArchError, match="head_size must be a"):
        Arch.uniform(2, 128, 4, 256, head_size=bad, **SMALL)


def test_arch_dict_and_json_round_trip_keep_the_head_size() -> None:
    arch = Arch(hidden=128, heads=(7, 2, 4), ffn=(256, 512, 128), head_size=64, **SMALL)
    data = arch.to_dict()
    assert data["head_size"] == 64
    assert Arch.from_dict(data) == arch
    assert Arch.from_json(json.dumps(data)) == arch
    uniform = {"layers": 3, "hidden": 128, "heads": 7, "ffn": 256, "head_size": 64, **SMALL}
    assert Arch.from_dict(uniform) == Arch.uniform(3, 128, 7, 256, head_size=64, **SMALL)
    with pytest.raises(InvalidArchError, match="head_size"):
        Arch.from_dict({**uniform, "head_size": -64})


def test_bert_geometry_dicts_have_no_head_size_key() -> None:
    old_keys = {"hidden", "heads", "ffn", "vocab_size", "max_positions", "type_vocab_size"}
    assert set(Arch.uniform(2, 128, 4, 256).to_dict()) == old_keys
    assert set(Arch.uniform(2, 256, 4, 256, head_size=64).to_dict()) == old_keys  # normalised away
    # so encoder specs of BERT-shaped archs keep the keys they had before head sizes existed
    spec = EncoderSpec(Arch.uniform(2, 128, 4, 256), W)
    old = {"kind": "encoder", "arch": {**Arch.uniform(2, 128, 4, 256).to_dict()}, "workload": W.to_dict()}
    assert spec.key == content_key(old)


def test_hugging_face_configs_cannot_express_a_head_size() -> None:
    arch = Arch.uniform(2, 128, 2, 256, head_size=32, type_vocab_size=0, **SMALL)  # 64 wide, not 128
    for model_type in ("bert", "distilbert"):
        with pytest.raises(InvalidArchError, match=r"head size at 32 \(attention width 64 != hidden 128\)"):
            arch.to_hf_dict(model_type)


def test_per_layer_arch_with_some_bert_layers_keeps_its_head_size() -> None:
    assert MIXED.head_size == 64
    first, second, third = MIXED.layers
    assert first == LayerShape(256, 4, 512) and first.head_size == 0
    assert (second.head_size, second.attn_width) == (64, 128)
    assert (third.head_size, third.attn_width) == (64, 512)
    assert Arch.from_dict(MIXED.to_dict()) == MIXED
    with pytest.raises(InvalidArchError, match="head size at 64"):
        Arch.uniform(2, 256, 2, 128, head_size=64).to_hf_dict()
    # the BERT-geometry layer is the same layer as in a BERT-geometry arch
    shapes = iter_layer_shapes([MIXED, Arch.uniform(1, 256, 4, 512)])
    assert shapes.count(LayerShape(256, 4, 512)) == 1 and len(shapes) == 3


# --- parameters and FLOPs ------------------------------------------------------------------
def test_layer_params_by_hand() -> None:
    h, w, f = 128, 448, 256
    qkv, out = h * 3 * w + 3 * w, w * h + h
    norms, ffn = 2 * 2 * h, (h * f + f) + (f * h + h)
    assert ODD.params == qkv + out + norms + ffn


@pytest.mark.parametrize(
    "arch",
    [
        Arch.uniform(2, 128, 7, 256, head_size=64, **SMALL),
        Arch.uniform(1, 96, 2, 64, head_size=16, type_vocab_size=0, **SMALL),
        MIXED,
    ],
    ids=["odd-heads", "narrow-attention", "mixed"],
)
def test_params_equal_the_torch_encoder(arch: Arch) -> None:
    encoder = Encoder(arch)
    assert arch.params == n_params(encoder)
    assert arch.embedding_params == n_params(encoder.embeddings)
    for shape, layer in zip(arch.layers, encoder.layers, strict=True):
        assert shape.params == n_params(layer)


@pytest.mark.parametrize(
    ("arch", "workload"),
    [
        (Arch.uniform(2, 32, 3, 48, head_size=16, **SMALL), Workload(2, 8)),  # 48 wide, hidden 32
        (Arch(hidden=32, heads=(4, 2, 5), ffn=(40, 64, 16), head_size=8, **SMALL), Workload(3, 7)),
    ],
    ids=["uniform", "mixed"],
)
def test_flops_equal_flop_counter_and_per_head_hand_count(arch: Arch, workload: Workload) -> None:
    b, s, h, d = workload.batch, workload.seq_len, arch.hidden, arch.head_size
    projections = attention = 0
    for a, f in zip(arch.heads, arch.ffn, strict=True):
        d_layer = d or h // a
        w = a * d_layer
        projections += 2 * b * s * (h * 3 * w + w * h + h * f + f * h)
        attention += 2 * (2 * b * a * s * s * d_layer)  # QK^T and PV, per head
    assert arch.flops(workload) == projections + attention == 2 * arch.macs(workload)
    torch.manual_seed(0)
    encoder = Encoder(arch).eval()
    ids = torch.randint(0, arch.vocab_size, (b, s))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = encoder(ids)
    assert out.shape == (b, s, h)
    counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    assert counts == {"aten.addmm": projections, "aten.bmm": attention}


def test_block_flops_and_bytes_of_a_head_size_layer_by_hand() -> None:
    b, s, h, a, f, w = W.batch, W.seq_len, 128, 7, 256, 448
    t = b * s
    spec = BlockSpec(ODD, W)
    expected = (
        2 * t * h * 3 * w  # qkv_proj
        + 2 * b * s * s * w  # attn_scores
        + 5 * b * a * s * s  # softmax
        + 2 * b * s * s * w  # attn_context
        + 2 * t * w * h  # out_proj
        + 2 * 8 * t * h  # two add_layernorm
        + 2 * t * h * f
        + 8 * t * f  # ffn_up_gelu
        + 2 * t * f * h  # ffn_down
    )
    assert block_flops(spec) == expected
    assert block_flops(spec) == sum(op.flops * n for op, n in layer_ops(ODD, W))
    elementwise = 5 * b * a * s * s + 2 * 8 * t * h + 8 * t * f
    assert block_flops(spec) - elementwise == Arch.uniform(1, 128, 7, 256, head_size=64).flops(W)
    ops = dict((op.op, op) for op, _ in layer_ops(ODD, W))
    assert ops["qkv_proj"].bytes_moved == 4 * ((h * 3 * w + 3 * w) + t * h + t * 3 * w)
    assert ops["out_proj"].bytes_moved == 4 * ((w * h + h) + t * w + t * h)
    assert ops["attn_scores"].bytes_moved == 4 * (2 * t * w + b * a * s * s)
    assert block_bytes(spec) == sum(op.bytes_moved * n for op, n in layer_ops(ODD, W))
    # the same layer without the head size is a different block, with fewer FLOPs
    assert block_flops(BlockSpec(LayerShape(128, 4, 256), W)) < block_flops(
        BlockSpec(LayerShape(128, 4, 256, 64), W)
    )


def test_encoder_ops_cover_the_encoder_flops() -> None:
    arch = MIXED
    ops = encoder_ops(arch, W)
    embedding = OpSpec("embedding", W, arch.hidden, vocab_size=arch.vocab_size)
    total = sum(op.flops * n for op, n in ops)
    assert total == embedding.flops + sum(block_flops(BlockSpec(layer, W)) for layer in arch.layers)


# --- operator and block specs --------------------------------------------------------------
def test_layer_ops_of_a_head_size_layer() -> None:
    ops = {op.op: (op, n) for op, n in layer_ops(ODD, W)}
    assert [(op, n) for op, n in LAYER_OPS] == [(spec.op, n) for spec, n in layer_ops(ODD, W)]
    for name in ("qkv_proj", "out_proj"):
        spec, _ = ops[name]
        assert (spec.hidden, spec.attn_width, spec.width, spec.heads) == (128, 448, 448, 0)
    for name in ("attn_scores", "attn_context"):
        spec, _ = ops[name]
        assert (spec.hidden, spec.heads, spec.attn_width) == (448, 7, 0)
    assert (ops["softmax"][0].hidden, ops["softmax"][0].heads) == (0, 7)
    for name in ("add_layernorm", "ffn_up_gelu", "ffn_down"):
        spec, _ = ops[name]
        assert (spec.hidden, spec.attn_width, spec.width) == (128, 0, 128)
        assert spec == OpSpec.for_layer(name, LayerShape(128, 4, 256), W)  # untouched by the head size
    assert ops["add_layernorm"][1] == 2


def test_attention_ops_are_keyed_by_the_attention_geometry() -> None:
    fixed = {op.op: op for op, _ in layer_ops(ODD, W)}
    bert = {op.op: op for op, _ in layer_ops(LayerShape(448, 7, 256), W)}  # 7 heads of 64 too
    for name in ("attn_scores", "softmax", "attn_context"):
        assert fixed[name] == bert[name] and fixed[name].key == bert[name].key
    # the projections map 128 -> 448, not 448 -> 448, and not 128 -> 128
    narrow = {op.op: op for op, _ in layer_ops(LayerShape(128, 4, 256), W)}
    keys = {fixed["qkv_proj"].key, bert["qkv_proj"].key, narrow["qkv_proj"].key}
    assert len(keys) == 3
    assert fixed["out_proj"].key not in {bert["out_proj"].key, narrow["out_proj"].key}
    assert fixed["qkv_proj"].flops == 2 * W.batch * W.seq_len * 128 * 3 * 448


def test_default_geometry_keys_are_unchanged_by_the_new_field() -> None:
    a = OpSpec("qkv_proj", W, 256)
    b = OpSpec("qkv_proj", W, 256, attn_width=256)
    assert a == b and a.key == b.key and b.attn_width == 0 and b.width == 256
    old_op = {"kind": "op", "op": "qkv_proj", "hidden": 256, "heads": 0, "ffn": 0, "vocab_size": 0}
    assert a.to_dict() == {**old_op, "workload": W.to_dict()}
    assert a.key == content_key({**old_op, "workload": W.to_dict()})
    block = BlockSpec(LayerShape(256, 4, 1024), W)
    old_block = {"kind": "block", "hidden": 256, "heads": 4, "ffn": 1024, "context": "model"}
    assert block.key == content_key({**old_block, "workload": W.to_dict()})
    assert BlockSpec(LayerShape(256, 4, 1024, 64), W).key == block.key  # BERT geometry, normalised
    assert OpSpec("qkv_proj", W, 256, attn_width=512).key != a.key
    # only the projections carry an attention width
    assert OpSpec("attn_scores", W, 448, 7, attn_width=999) == OpSpec("attn_scores", W, 448, 7)
    assert OpSpec("ffn_down", W, 256, ffn=512, attn_width=999).attn_width == 0


@pytest.mark.parametrize("bad", [-1, True, "448"])
def test_a_projection_attention_width_must_be_a_non_negative_integer(bad: object) -> None:
    with pytest.raises(InvalidArchError, match="attn_width must be"):
        OpSpec("out_proj", W, 128, attn_width=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec",
    [
        *(op for op, _ in layer_ops(ODD, W)),
        BlockSpec(ODD, W, "model"),
        BlockSpec(LayerShape(256, 2, 128, 64), Workload(1, 8, "bf16"), "isolated"),
        EncoderSpec(Arch.uniform(2, 128, 7, 256, head_size=64, **SMALL), W),
        EncoderSpec(MIXED, W),
    ],
    ids=lambda s: s.label,
)
def test_specs_round_trip_through_dicts_and_json(spec: OpSpec | BlockSpec | EncoderSpec) -> None:
    again = spec_from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.key == spec.key and again.label == spec.label


def test_labels_show_the_head_size() -> None:
    ops = {op.op: op for op, _ in layer_ops(ODD, W)}
    assert "attn_width=448" in ops["qkv_proj"].label
    assert "hidden=448" in ops["attn_scores"].label
    assert "/d64" in BlockSpec(ODD, W).label
    assert "/d" not in BlockSpec(LayerShape(256, 4, 256, 64), W).label
    assert ",D=64]" in EncoderSpec(MIXED, W).label
    assert len({BlockSpec(ODD, W).key, BlockSpec(LayerShape(128, 7, 256, 32), W).key}) == 2


# --- torch modules -------------------------------------------------------------------------
B, S = 2, 8
SW = Workload(B, S)
TINY = LayerShape(32, 3, 40, 16)  # 3 heads of 16: attention 48 wide on a hidden size of 32
TINY_ARCH = Arch(hidden=32, heads=(3, 2, 4), ffn=(40, 24, 16), head_size=16, **SMALL)  # layer 1 is 2x16
OP_SHAPES = {
    "qkv_proj": (B, S, 3 * 48),
    "attn_scores": (B, 3, S, S),
    "softmax": (B, 3, S, S),
    "attn_context": (B, 3, S, 16),
    "out_proj": (B, S, 32),
    "add_layernorm": (B, S, 32),
    "ffn_up_gelu": (B, S, 40),
    "ffn_down": (B, S, 32),
}


def run(module: torch.nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(*inputs)


@pytest.mark.parametrize(("op", "shape"), sorted(OP_SHAPES.items()))
def test_built_operators_of_a_head_size_layer(op: str, shape: tuple[int, ...]) -> None:
    spec = OpSpec.for_layer(op, TINY, SW)
    built = build(spec)
    out = run(built.module, *built.inputs)
    assert tuple(out.shape) == shape and torch.isfinite(out).all()
    if op == "out_proj":
        assert tuple(built.inputs[0].shape) == (B, S, 48)
    if op in ("attn_scores", "attn_context"):
        assert all(x.shape[-1] in (16, S) for x in built.inputs)


@pytest.mark.parametrize(
    "spec",
    [BlockSpec(TINY, SW, "isolated"), BlockSpec(TINY, SW, "model"), EncoderSpec(TINY_ARCH, SW)],
    ids=lambda s: s.label,
)
def test_built_blocks_and_encoders_of_head_size_shapes(spec: BlockSpec | EncoderSpec) -> None:
    built = build(spec)
    out = run(built.module, *built.inputs)
    assert tuple(out.shape) == (B, S, 32) and torch.isfinite(out).all()
    layers = built.module.layers if isinstance(built.module, (LayerStack, Encoder)) else [built.module]
    for layer in layers:
        assert layer.qkv.in_features == 32 and layer.out.out_features == 32
    if isinstance(spec, EncoderSpec):
        assert [layer.qkv.out_features for layer in layers] == [3 * 48, 3 * 32, 3 * 64]
        assert [layer.out.in_features for layer in layers] == [48, 32, 64]


def test_encoder_layer_with_bert_head_size_is_the_default_layer() -> None:
    default, same = LayerShape(32, 4, 48), LayerShape(32, 4, 48, 8)
    torch.manual_seed(3)
    a = EncoderLayer(default).eval()
    torch.manual_seed(3)
    b = EncoderLayer(same).eval()
    assert [(n, p.shape) for n, p in a.named_parameters()] == [(n, p.shape) for n, p in b.named_parameters()]
    assert a.scale == b.scale == 1 / math.sqrt(8)
    x = torch.randn(B, S, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(run(a, x), run(b, x), rtol=0, atol=0)


def test_head_size_layer_matches_per_head_attention_math() -> None:
    torch.manual_seed(4)
    layer = EncoderLayer(TINY).eval()
    assert tuple(layer.qkv.weight.shape) == (3 * 48, 32) and tuple(layer.out.weight.shape) == (32, 48)
    assert layer.scale == 1 / math.sqrt(16)
    x = torch.randn(B, S, 32, generator=torch.Generator().manual_seed(5))
    d, width = 16, 48
    with torch.no_grad():
        wq, wk, wv = layer.qkv.weight.split(width, dim=0)
        bq, bk, bv = layer.qkv.bias.split(width, dim=0)
        q, k, v = x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv
        context = torch.empty(B, S, width)
        for i in range(B):
            for head in range(3):
                cols = slice(head * d, (head + 1) * d)
                probs = torch.softmax(q[i, :, cols] @ k[i, :, cols].T / math.sqrt(d), dim=-1)
                context[i, :, cols] = probs @ v[i, :, cols]
        y = layer.norm1(x + layer.out(context))
        expected = layer.norm2(y + layer.down(torch.nn.functional.gelu(layer.up(y))))
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_embeddings_do_not_depend_on_the_head_size() -> None:
    assert n_params(Embeddings(TINY_ARCH)) == TINY_ARCH.embedding_params


@pytest.mark.parametrize(
    "spec",
    [
        BlockSpec(TINY, SW, "isolated"),
        EncoderSpec(TINY_ARCH, SW),
        OpSpec.for_layer("qkv_proj", TINY, SW),
        OpSpec.for_layer("out_proj", TINY, SW),
        OpSpec.for_layer("attn_context", TINY, SW),
    ],
    ids=lambda s: s.label,
)
def test_onnx_runtime_with_all_fusions_agrees_with_torch(spec: OpSpec | BlockSpec | EncoderSpec) -> None:
    import onnxruntime as ort

    built = build(spec)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # the backend's default
    session = ort.InferenceSession(export_onnx(built), options, providers=["CPUExecutionProvider"])
    feeds = {name: x.numpy() for name, x in zip(built.input_names, built.inputs, strict=True)}
    (got,) = session.run(None, feeds)
    np.testing.assert_allclose(got, run(built.module, *built.inputs).numpy(), rtol=1e-4, atol=1e-4)
