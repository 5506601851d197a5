"""ONNX export matches the torch model; the INT8 variant stays close to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from latbench.distill.checkpoint import load_checkpoint
from latbench.distill.export import export_onnx, onnx_probs, quantize_int8
from latbench.distill.trainer import predict_probs


def test_onnx_and_int8_students_agree_with_torch(teacher_dir: Path, demo_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)
    texts = [e.text for e in demo_data[1].examples[:40]]
    encoded = ck.encoder.encode(texts)
    path = export_onnx(ck.model, tmp_path / "m.onnx", encoded)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    expected = predict_probs(ck.model, encoded)
    # batches of a different size and length than the export example: the axes are dynamic
    np.testing.assert_allclose(onnx_probs(path, encoded, batch_size=7), expected, atol=1e-5)
    int8 = quantize_int8(path, tmp_path / "m-int8.onnx")
    assert int8.stat().st_size < path.stat().st_size
    probs = onnx_probs(int8, encoded)
    assert np.abs(probs - expected).max() < 0.2
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
