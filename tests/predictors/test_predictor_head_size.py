"""Predictors and ``EncoderBatch`` for encoders with a fixed head size (attention
``heads * head_size`` wide, not the hidden size), on the fake-backend database of conftest,
whose table holds BERT-geometry layers only."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latbench.arch import Arch, LayerShape, Workload
from latbench.predictors import registry
from latbench.predictors.base import ExtrapolationWarning, take
from latbench.predictors.baselines import kernel_features
from latbench.predictors.batch import EncoderBatch
from latbench.predictors.io import load_predictor, save_predictor
from latbench.predictors.lut import LutBlockPredictor, LutOpPredictor
from latbench.predictors.table import ExtrapolationError, LatencyTable
from latbench.specs import (
    LAYER_OPS,
    BlockSpec,
    EncoderSpec,
    OpSpec,
    block_bytes,
    block_flops,
    encoder_ops,
    layer_ops,
)
from latbench.testing.fake_backend import fake_latency_s

W = Workload(1, 64)  # inside the fake table's workloads (batch 1, sequences 16 and 64)
EXTRA = {"vocab_size": 1000}  # the fake table's vocabulary
NARROW = Arch.uniform(2, 128, 4, 256, **EXTRA)  # BERT geometry: 4 heads of 32, attention 128 wide
WIDE = Arch.uniform(2, 128, 4, 256, head_size=64, **EXTRA)  # 4 heads of 64: attention 256 wide
SEVEN = Arch.uniform(2, 128, 7, 256, head_size=64, **EXTRA)  # 7 heads of 64: attention 448 wide
MIXED = Arch(hidden=256, heads=(4, 2, 4), ffn=(512, 1024, 256), head_size=64, **EXTRA)  # layer 1: 2 x 64
MIXED_BERT = Arch(hidden=256, heads=(4, 2, 4), ffn=(512, 1024, 256), **EXTRA)  # layer 1: 2 x 128
ARCHS = [WIDE, NARROW, SEVEN, MIXED, MIXED_BERT]

FLOP_DRIVEN = ("lut-op", "lut-block", "flops", "xgboost", "nnmeter-rf")
TABLE_FLAGGED = {  # the dimensions a BERT-only table flags for WIDE's layers
    "lut-block": {"block.attn_ratio"},
    "lut-op": {"qkv_proj.attn_ratio", "out_proj.attn_ratio"},
    "xgboost": {"block.attn_ratio"},  # its base is lut-block when the table has blocks
}


def specs(archs: list[Arch], workload: Workload = W) -> list[EncoderSpec]:
    return [EncoderSpec(a, workload) for a in archs]


def create(name: str, **params: Any) -> Any:
    if name in TABLE_FLAGGED:
        params.setdefault("on_extrapolation", "ignore")
    return registry.create(name, **params)


@pytest.fixture(scope="module")
def fitted(measured) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    return {name: create(name).fit(X, y, table=table) for name in FLOP_DRIVEN}


# --- EncoderBatch -------------------------------------------------------------------------
def test_batch_flops_and_bytes_match_the_arch_and_the_specs() -> None:
    batch = EncoderBatch.from_archs(ARCHS, W)
    assert batch.head_size.tolist() == [64, 0, 64, 64, 0]
    np.testing.assert_array_equal(batch.matmul_flops(), [a.flops(W) for a in ARCHS])
    for i, arch in enumerate(ARCHS):
        n = arch.num_layers
        assert batch.attn_width[i, :n].tolist() == [layer.attn_width for layer in arch.layers]
        for j, layer in enumerate(arch.layers):
            assert batch.layer_flops[i, j] == block_flops(BlockSpec(layer, W))
            assert batch.layer_bytes[i, j] == block_bytes(BlockSpec(layer, W))
            for op, _ in LAYER_OPS:
                assert batch.op_flops(op)[i, j] == OpSpec.for_layer(op, layer, W).flops, (i, j, op)
                assert batch.op_bytes(op)[i, j] == OpSpec.for_layer(op, layer, W).bytes_moved, (i, j, op)
        assert batch.layer_flops[i, n:].sum() == 0 and batch.layer_bytes[i, n:].sum() == 0
        assert batch.layer_flops[i].sum() == sum(block_flops(BlockSpec(layer, W)) for layer in arch.layers)
    assert batch.matmul_flops()[0] > batch.matmul_flops()[1]  # WIDE's attention is twice NARROW's


def test_unique_layers_carry_the_head_size_and_merge_bert_geometry() -> None:
    archs = [WIDE, NARROW, MIXED, Arch.uniform(1, 256, 4, 512, **EXTRA)]
    batch = EncoderBatch.from_archs(archs, W)
    rows, index = batch.unique_layers()
    assert rows.shape == (5, 6)  # (128,4,256,d64) (128,4,256) (256,4,512) (256,2,1024,d64) (256,4,256)
    for i, arch in enumerate(archs):
        assert (index[i, arch.num_layers :] == -1).all()
        for j, layer in enumerate(arch.layers):
            h, a, f, b, s, d = rows[index[i, j]].tolist()
            assert LayerShape(h, a, f, d) == layer and d == layer.head_size
            assert (b, s) == (W.batch, W.seq_len)
    assert index[2, 0] == index[3, 0]  # MIXED's first layer is BERT's (256, 4, 512)
    assert index[0, 0] != index[1, 0]  # the head size tells WIDE's layer from NARROW's
    # built by hand, a head size of hidden / heads is BERT's geometry too: one row
    by_hand = EncoderBatch(
        hidden=[256, 256],
        heads=[[4], [4]],
        ffn=[[512], [512]],
        batch=[1, 1],
        seq_len=[64, 64],
        vocab_size=[1000, 1000],
        head_size=[64, 0],
    )
    rows, index = by_hand.unique_layers()
    assert rows.tolist() == [[256, 4, 512, 1, 64, 0]] and index.tolist() == [[0], [0]]
    np.testing.assert_array_equal(by_hand.layer_flops[0], by_hand.layer_flops[1])


def test_take_and_from_specs_keep_the_head_size() -> None:
    batch = EncoderBatch.from_specs(specs(ARCHS))
    assert batch.head_size.tolist() == [64, 0, 64, 64, 0]
    picked = take(batch, np.array([2, 1, 0]))
    assert picked.head_size.tolist() == [64, 0, 64]
    np.testing.assert_array_equal(picked.matmul_flops(), batch.matmul_flops()[[2, 1, 0]])
    np.testing.assert_array_equal(picked.layer_flops, batch.layer_flops[[2, 1, 0]])


def test_batch_needs_a_head_size_for_heads_that_do_not_divide_the_hidden_size() -> None:
    seven = dict(hidden=[128], heads=[[7, 7]], ffn=[[256, 256]], batch=[1], seq_len=[64], vocab_size=[1000])
    with pytest.raises(ValueError, match="divide the hidden size"):
        EncoderBatch(**seven)
    with pytest.raises(ValueError, match="divide the hidden size"):
        EncoderBatch(**seven, head_size=[0])
    batch = EncoderBatch(**seven, head_size=[64])
    assert batch.attn_width.tolist() == [[448, 448]]
    assert batch.matmul_flops()[0] == SEVEN.flops(W)
    with pytest.raises(ValueError, match="head_size"):
        EncoderBatch(**seven, head_size=[-64])
    with pytest.raises(ValueError, match="head_size"):
        EncoderBatch(**seven, head_size=[64, 64])


# --- predictors fitted on BERT-geometry data ----------------------------------------------
def test_the_fixture_table_has_no_head_size_entries(measured) -> None:  # type: ignore[no-untyped-def]
    table, X, *_ = measured
    assert all(b.layer.head_size == 0 for b in table.blocks)
    assert all(op.attn_width == 0 for op in table.ops)
    assert all(s.arch.head_size == 0 for s in X)


@pytest.mark.parametrize("name", FLOP_DRIVEN)
def test_head_size_predictions_are_finite_and_grow_with_the_attention_width(name: str, fitted) -> None:  # type: ignore[no-untyped-def]
    names = ("wide", "narrow", "seven", "mixed", "mixed_bert")
    latency = dict(zip(names, fitted[name].predict(specs(ARCHS)), strict=True))
    assert all(math.isfinite(t) and t > 0 for t in latency.values()), latency
    assert latency["wide"] > latency["narrow"]  # same hidden, heads and FFN; attention 256 vs 128 wide
    assert latency["seven"] > latency["wide"]  # 448 vs 256 wide
    assert latency["mixed"] < latency["mixed_bert"]  # layer 1: 2 heads of 64 instead of 2 of 128


@pytest.mark.parametrize("name", FLOP_DRIVEN)
def test_population_prediction_of_head_size_archs_matches_one_by_one(name: str, fitted) -> None:  # type: ignore[no-untyped-def]
    predictor = fitted[name]
    together = predictor.predict(EncoderBatch.from_archs(ARCHS, W))
    alone = [predictor.predict([spec])[0] for spec in specs(ARCHS)]
    np.testing.assert_allclose(together, alone, rtol=1e-9)


@pytest.mark.parametrize("name", sorted(TABLE_FLAGGED))
def test_table_predictors_flag_head_sizes_the_table_never_measured(name: str, fitted) -> None:  # type: ignore[no-untyped-def]
    detail = fitted[name].predict_detail(specs([WIDE, NARROW, MIXED, MIXED_BERT]))
    wide, narrow, mixed, mixed_bert = detail.outside
    assert set(wide) == TABLE_FLAGGED[name]
    assert set(mixed) == TABLE_FLAGGED[name]  # its 2 x 64 layer only
    assert narrow == () and mixed_bert == ()
    assert detail.extrapolated.tolist() == [True, False, True, False]


def test_head_size_outside_the_table_warns_or_raises(measured) -> None:  # type: ignore[no-untyped-def]
    table, X, y, *_ = measured
    predictor = LutBlockPredictor().fit(X, y, table=table)  # on_extrapolation="warn"
    with pytest.warns(ExtrapolationWarning, match=r"1 of 2 encoders lie outside .*block\.attn_ratio"):
        predictor.predict(specs([NARROW, WIDE]))
    with pytest.raises(ExtrapolationError, match="attn_ratio"):
        LutOpPredictor(on_extrapolation="raise").fit(X, y, table=table).predict(specs([WIDE]))
    assert LutOpPredictor(on_extrapolation="raise").fit(X, y, table=table).predict(specs([NARROW]))[0] > 0


def test_forest_sums_its_kernels_keyed_as_the_specs(fitted) -> None:  # type: ignore[no-untyped-def]
    forest = fitted["nnmeter-rf"]
    expected = []
    for spec in specs(ARCHS):
        total = 0.0
        for op, count in encoder_ops(spec.arch, spec.workload):
            w = op.workload
            row = kernel_features(op.op, op.hidden, op.heads, op.ffn, w.batch, w.seq_len, 4, op.width)
            assert row[0, -2:].tolist() == [op.flops, op.bytes_moved]
            total += count * forest.predict_kernel(op.op, row)[0]
        expected.append(total)
    np.testing.assert_allclose(forest.predict(specs(ARCHS)), expected, rtol=1e-12)


# --- a table that measured head-size layers -------------------------------------------------
@pytest.fixture(scope="module")
def head_size_table(measured) -> LatencyTable:  # type: ignore[no-untyped-def]
    """The fixture's table plus head-size-64 layers over the same space, timed by the fake law."""
    table, *_ = measured
    blocks, ops = dict(table.blocks), dict(table.ops)
    for hidden in (64, 128, 256):
        for heads in (2, 4):
            for ratio in (2, 4):
                layer = LayerShape(hidden, heads, hidden * ratio, 64)
                for seq in (16, 64):
                    workload = Workload(1, seq)
                    for context in ("model", "isolated"):
                        block = BlockSpec(layer, workload, context)
                        blocks[block] = fake_latency_s(block)
                    for op, _ in layer_ops(layer, workload):
                        ops[op] = fake_latency_s(op)
    return LatencyTable(table.target, table.fingerprint, blocks, ops)


def test_a_table_with_head_size_layers_does_not_flag_them(measured, head_size_table) -> None:  # type: ignore[no-untyped-def]
    _, X, y, *_ = measured
    archs = [WIDE, NARROW, MIXED, MIXED_BERT]
    truth = np.array([fake_latency_s(spec) for spec in specs(archs)])
    block = LutBlockPredictor(on_extrapolation="raise").fit(X, y, table=head_size_table)
    predicted = block.predict(specs(archs))
    np.testing.assert_allclose(predicted, truth, rtol=0.02)  # the fake law is additive in blocks
    op = LutOpPredictor(on_extrapolation="raise").fit(X, y, table=head_size_table)
    assert not op.predict_detail(specs(archs)).extrapolated.any()


def test_a_head_size_table_round_trips_through_a_predictor_file(  # type: ignore[no-untyped-def]
    measured, head_size_table, tmp_path: Path
) -> None:
    _, X, y, target, fingerprint = measured
    again = LatencyTable.from_dict(head_size_table.to_dict())
    assert dict(again.blocks) == dict(head_size_table.blocks)
    assert dict(again.ops) == dict(head_size_table.ops)
    assert any(b.layer.head_size for b in again.blocks) and any(op.attn_width for op in again.ops)
    predictor = LutOpPredictor(on_extrapolation="raise").fit(X, y, table=head_size_table)
    path = tmp_path / "p.json"
    save_predictor(predictor, path, target=target, fingerprint=fingerprint, training={})
    loaded = load_predictor(path, target=target, fingerprint=fingerprint).predictor
    np.testing.assert_allclose(loaded.predict(specs(ARCHS[:2])), predictor.predict(specs(ARCHS[:2])))
