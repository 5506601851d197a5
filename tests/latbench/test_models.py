"""Torch modules built from specs: shapes, BERT's layer math, determinism, ONNX export."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest
import torch

from latbench.arch import Arch, LayerShape, Workload
from latbench.models.onnx_export import export_onnx
from latbench.models.torch_modules import (
    MODEL_CONTEXT_COPIES,
    Built,
    Embeddings,
    Encoder,
    EncoderLayer,
    LayerStack,
    build,
)
from latbench.specs import OP_DEPENDS, BlockSpec, EncoderSpec, OpSpec

B, S, H, A, F, V = 2, 8, 32, 4, 48, 50
W = Workload(B, S)
LAYER = LayerShape(H, A, F)
ARCH = Arch(hidden=H, heads=(4, 2), ffn=(48, 64), vocab_size=V, max_positions=16)

OUTPUT_SHAPES = {
    "embedding": (B, S, H),
    "qkv_proj": (B, S, 3 * H),
    "attn_scores": (B, A, S, S),
    "softmax": (B, A, S, S),
    "attn_context": (B, A, S, H // A),
    "out_proj": (B, S, H),
    "add_layernorm": (B, S, H),
    "ffn_up_gelu": (B, S, F),
    "ffn_down": (B, S, H),
}
SPECS = [
    *(OpSpec(op, W, H, A, F, V) for op in OP_DEPENDS),
    BlockSpec(LAYER, W, "isolated"),
    BlockSpec(LAYER, W, "model"),
    EncoderSpec(ARCH, W),
]


def run(built: Built) -> torch.Tensor:
    with torch.no_grad():
        return built.module(*built.inputs)


def test_every_operator_has_an_expected_shape() -> None:
    assert set(OUTPUT_SHAPES) == set(OP_DEPENDS)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_output_shapes(spec: OpSpec | BlockSpec | EncoderSpec) -> None:
    built = build(spec)
    assert len(built.inputs) == len(built.input_names)
    assert not built.module.training  # eval mode
    out = run(built)
    expected = OUTPUT_SHAPES[spec.op] if isinstance(spec, OpSpec) else (B, S, H)
    assert tuple(out.shape) == expected
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_softmax_and_context_inputs_are_probabilities() -> None:
    out = run(build(OpSpec("softmax", W, heads=A)))
    assert torch.allclose(out.sum(-1), torch.ones(B, A, S))
    probs, _ = build(OpSpec("attn_context", W, H, A)).inputs
    assert torch.allclose(probs.sum(-1), torch.ones(B, A, S))


def test_embedding_inputs_are_token_ids_in_the_vocabulary() -> None:
    (ids,) = build(OpSpec("embedding", W, H, vocab_size=V)).inputs
    assert ids.dtype == torch.int64 and ids.shape == (B, S)
    assert int(ids.min()) >= 0 and int(ids.max()) < V
    (ids,) = build(EncoderSpec(ARCH, W)).inputs
    assert int(ids.max()) < ARCH.vocab_size


# --- BERT's math, written out -------------------------------------------------------------
def layer_norm(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-12) * norm.weight + norm.bias


def gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))  # BERT's exact (erf) GELU


def reference_layer(layer: EncoderLayer, x: torch.Tensor, heads: int) -> torch.Tensor:
    """A post-LN BERT layer with per-head loops, from the module's weights."""
    hidden = x.shape[-1]
    d = hidden // heads
    wq, wk, wv = layer.qkv.weight.split(hidden, dim=0)
    bq, bk, bv = layer.qkv.bias.split(hidden, dim=0)
    q, k, v = x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv
    context = torch.empty_like(x)
    for b in range(x.shape[0]):
        for h in range(heads):
            cols = slice(h * d, (h + 1) * d)
            scores = q[b, :, cols] @ k[b, :, cols].T / math.sqrt(d)
            probs = torch.exp(scores - scores.max(-1, keepdim=True).values)
            probs = probs / probs.sum(-1, keepdim=True)
            context[b, :, cols] = probs @ v[b, :, cols]
    attn = context @ layer.out.weight.T + layer.out.bias
    x = layer_norm(x + attn, layer.norm1)
    ffn = gelu(x @ layer.up.weight.T + layer.up.bias) @ layer.down.weight.T + layer.down.bias
    return layer_norm(x + ffn, layer.norm2)


def randomize_norms(module: torch.nn.Module, gen: torch.Generator) -> None:
    """LayerNorms start at weight 1, bias 0; make them non-trivial so the test sees them."""
    with torch.no_grad():
        for norm in (m for m in module.modules() if isinstance(m, torch.nn.LayerNorm)):
            norm.weight.copy_(1 + 0.1 * torch.randn(norm.weight.shape, generator=gen))
            norm.bias.copy_(0.1 * torch.randn(norm.bias.shape, generator=gen))


@pytest.mark.parametrize("shape", [LayerShape(32, 4, 48), LayerShape(24, 1, 16)])
def test_encoder_layer_matches_bert_layer_math(shape: LayerShape) -> None:
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    layer = EncoderLayer(shape).eval()
    randomize_norms(layer, gen)
    x = torch.randn(2, 5, shape.hidden, generator=gen)
    with torch.no_grad():
        got = layer(x)
        expected = reference_layer(layer, x, shape.heads)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_embeddings_and_encoder_match_bert_math() -> None:
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    encoder = Encoder(ARCH).eval()
    randomize_norms(encoder, gen)
    ids = torch.randint(0, V, (B, S), generator=gen)
    emb = encoder.embeddings
    assert emb.token_type is not None
    with torch.no_grad():
        x = emb.word.weight[ids] + emb.position.weight[:S] + emb.token_type.weight[0]
        x = layer_norm(x, emb.norm)
        torch.testing.assert_close(emb(ids), x, rtol=1e-5, atol=1e-5)
        for layer, shape in zip(encoder.layers, ARCH.layers, strict=True):
            x = reference_layer(layer, x, shape.heads)
        torch.testing.assert_close(encoder(ids), x, rtol=1e-5, atol=1e-5)


def test_embeddings_without_token_types() -> None:
    arch = Arch.uniform(1, H, A, F, vocab_size=V, max_positions=16, type_vocab_size=0)
    emb = Embeddings(arch).eval()
    assert emb.token_type is None
    ids = torch.arange(S).unsqueeze(0) % V
    with torch.no_grad():
        expected = layer_norm(emb.word.weight[ids] + emb.position.weight[:S], emb.norm)
        torch.testing.assert_close(emb(ids), expected, rtol=1e-5, atol=1e-5)


# --- determinism and model context --------------------------------------------------------
def assert_same_build(a: Built, b: Built) -> None:
    sa, sb = a.module.state_dict(), b.module.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name
    assert len(a.inputs) == len(b.inputs)
    for x, y in zip(a.inputs, b.inputs, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_build_is_deterministic_for_a_seed(spec: OpSpec | BlockSpec | EncoderSpec) -> None:
    torch.manual_seed(123)  # global RNG state must not matter
    first = build(spec, seed=7)
    torch.rand(10)
    assert_same_build(first, build(spec, seed=7))


def test_a_different_seed_gives_different_weights_and_inputs() -> None:
    spec = BlockSpec(LAYER, W, "isolated")
    a, b = build(spec, seed=0), build(spec, seed=1)
    assert not torch.equal(a.module.qkv.weight, b.module.qkv.weight)
    assert not torch.equal(a.inputs[0], b.inputs[0])


def test_model_context_stacks_distinct_copies() -> None:
    built = build(BlockSpec(LAYER, W, "model"))
    stack = built.module
    assert isinstance(stack, LayerStack)
    assert len(stack.layers) == MODEL_CONTEXT_COPIES
    assert built.instances_per_call == MODEL_CONTEXT_COPIES
    weights = [layer.qkv.weight for layer in stack.layers]
    for i in range(len(weights)):
        for j in range(i + 1, len(weights)):
            assert weights[i].data_ptr() != weights[j].data_ptr()
            assert not torch.equal(weights[i], weights[j]), (i, j)
    # the stack applies its copies in order
    with torch.no_grad():
        x = built.inputs[0]
        for layer in stack.layers:
            x = layer(x)
        torch.testing.assert_close(stack(built.inputs[0]), x)


def test_copies_can_be_chosen_and_isolated_blocks_run_one_layer() -> None:
    built = build(BlockSpec(LAYER, W, "model"), copies=3)
    assert len(built.module.layers) == 3 and built.instances_per_call == 3
    isolated = build(BlockSpec(LAYER, W, "isolated"))
    assert isinstance(isolated.module, EncoderLayer)
    assert isolated.instances_per_call == 1


def test_build_rejects_what_is_not_a_spec() -> None:
    not_a_spec = SimpleNamespace(workload=W)
    with pytest.raises(TypeError, match="cannot build SimpleNamespace"):
        build(not_a_spec)  # type: ignore[arg-type]


# --- ONNX export --------------------------------------------------------------------------
ONNX_SPECS = [
    BlockSpec(LAYER, W, "isolated"),
    BlockSpec(LAYER, W, "model"),
    EncoderSpec(ARCH, W),
    OpSpec("embedding", W, H, vocab_size=V),
    OpSpec("ffn_up_gelu", W, H, ffn=F),
    OpSpec("add_layernorm", W, H),
    OpSpec("attn_scores", W, H, A),
]


@pytest.mark.parametrize("spec", ONNX_SPECS, ids=lambda s: s.label)
def test_onnx_export_runs_in_onnxruntime_and_matches_torch(
    spec: OpSpec | BlockSpec | EncoderSpec,
) -> None:
    built = build(spec)
    model = export_onnx(built)  # filterwarnings=error: any warning fails the test
    assert isinstance(model, bytes) and model
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(built.input_names)
    assert [o.name for o in session.get_outputs()] == ["output"]
    feeds = {name: x.numpy() for name, x in zip(built.input_names, built.inputs, strict=True)}
    (got,) = session.run(None, feeds)
    expected = run(built).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
