"""The deployed graph form: latbench's encoders and blocks built as transformers exports them."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import transformers

from latbench.arch import Arch, LayerShape, Workload
from latbench.backends.onnxruntime_cpu import OnnxRuntimeCPUBackend, export_spec
from latbench.fingerprint import Fingerprint, collect
from latbench.models.deployed import (
    GRAPH_FORM,
    attention_mask_4d,
    build_deployed,
    export_deployed,
)
from latbench.models.torch_modules import MODEL_CONTEXT_COPIES
from latbench.specs import BlockSpec, EncoderSpec, OpSpec
from latbench.user_models import export_hf_model

ARCH = Arch.uniform(2, 64, 2, 128, vocab_size=100, max_positions=32)


def run(model: bytes, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def test_the_encoder_exports_with_ids_and_mask_and_dynamic_axes() -> None:
    built = build_deployed(EncoderSpec(ARCH, Workload(1, 16)))
    assert built.input_names == ("input_ids", "attention_mask") and built.instances_per_call == 1
    model = export_deployed(built.module, built.inputs, built.input_names)
    graph = onnx.load_from_string(model).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}
    # one graph serves another batch and sequence length, and computes what the module does
    ids = torch.randint(0, 100, (3, 24))
    mask = torch.ones((3, 24), dtype=torch.long)
    with torch.no_grad():
        expected = built.module(ids, mask).numpy()
    got = run(model, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_padding_is_masked_as_in_bert() -> None:
    """Keys the padding mask hides change nothing at the positions that are kept."""
    assert attention_mask_4d(torch.tensor([[1, 1, 0]])).int().tolist() == [[[[1, 1, 0]] * 3]]
    module = build_deployed(EncoderSpec(ARCH, Workload(1, 8))).module
    ids = torch.randint(0, 100, (1, 8))
    with torch.no_grad():
        short = module(ids[:, :5], torch.ones((1, 5), dtype=torch.long))
        padded = module(ids, torch.tensor([[1] * 5 + [0] * 3]))
    torch.testing.assert_close(padded[:, :5], short, rtol=1e-4, atol=1e-5)


def test_each_layer_has_the_operators_of_an_exported_bert_layer() -> None:
    """Node for node (by type), a layer of latbench's export is a layer of the model that
    transformers exports for the same configuration: three projections, SDPA with the mask
    and its NaN guard, the shape arithmetic of every reshape."""
    config = transformers.BertConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, vocab_size=100,
        max_position_embeddings=32,
    )  # fmt: skip
    theirs = onnx.load_from_string(export_hf_model(transformers.BertModel(config).eval(), 1, 16)).graph
    spec = EncoderSpec(Arch.from_hf_config(config), Workload(1, 16))
    ours = onnx.load_from_string(export_spec(spec)[0]).graph

    def layer_ops(graph: onnx.GraphProto, prefix: str) -> Counter[str]:
        return Counter(n.op_type for n in graph.node if prefix in n.name and n.op_type != "Constant")

    expected = layer_ops(theirs, "/layer.1/")
    assert expected["MatMul"] == 8 and expected["IsNaN"] == 1  # q, k, v, out, up, down, 2 attention products
    assert layer_ops(ours, "/layers.1/") == expected


def test_blocks_stack_distinct_copies_under_one_mask() -> None:
    layer = LayerShape(64, 2, 128)
    model_context = build_deployed(BlockSpec(layer, Workload(2, 8), "model"))
    isolated = build_deployed(BlockSpec(layer, Workload(2, 8), "isolated"))
    assert model_context.instances_per_call == MODEL_CONTEXT_COPIES and isolated.instances_per_call == 1
    assert model_context.input_names == ("hidden_states", "attention_mask")
    first, second = model_context.module.layers[:2]  # type: ignore[index]
    assert not torch.equal(first.query.weight, second.query.weight)
    model, feeds, instances = export_spec(BlockSpec(layer, Workload(2, 8), "model"))
    assert instances == MODEL_CONTEXT_COPIES and set(feeds) == {"hidden_states", "attention_mask"}
    with torch.no_grad():
        expected = model_context.module(*model_context.inputs).numpy()
    np.testing.assert_allclose(run(model, feeds), expected, rtol=1e-4, atol=1e-5)


def test_an_operator_stays_a_static_graph_of_itself() -> None:
    op = OpSpec("ffn_down", Workload(1, 8), 64, 2, 128)
    model, feeds, instances = export_spec(op)
    graph = onnx.load_from_string(model).graph
    assert instances == 1 and set(feeds) == {"x"}
    assert all(d.dim_value > 0 for i in graph.input for d in i.type.tensor_type.shape.dim)


def test_the_form_is_in_the_fingerprint_and_earlier_fingerprints_keep_their_keys() -> None:
    here = collect(OnnxRuntimeCPUBackend().fingerprint_extras())
    assert here.graph_form == GRAPH_FORM and here.to_dict()["graph_form"] == GRAPH_FORM
    earlier = here.to_dict()
    del earlier["graph_form"]  # a fingerprint written before the deployed form existed
    old = Fingerprint.from_dict(earlier)
    assert old.graph_form == "" and "graph_form" not in old.to_dict()
    assert old.key != here.key  # measurements of the two forms never share an identity


@pytest.mark.parametrize("seed", [0, 1])
def test_building_is_deterministic_and_leaves_the_rng_alone(seed: int) -> None:
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = build_deployed(EncoderSpec(ARCH, Workload(1, 8)), seed=seed)
    b = build_deployed(EncoderSpec(ARCH, Workload(1, 8)), seed=seed)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.module.parameters(), b.module.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert torch.equal(a.inputs[0], b.inputs[0])
