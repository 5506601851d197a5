"""LSQ quantizers, quantized students, and their QDQ ONNX export."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from latbench.distill.checkpoint import load_checkpoint
from latbench.distill.export import export_onnx, onnx_probs
from latbench.distill.quant import (
    LsqQuantizer,
    QuantLinear,
    packed_size_bytes,
    parse_bits,
    quantize_student,
)
from latbench.distill.trainer import predict_probs
from latbench.errors import ConfigError


def test_a_quantizer_puts_values_on_its_grid_and_initialises_its_step_as_lsq_says() -> None:
    torch.manual_seed(0)
    w = torch.randn(6, 10)
    q = LsqQuantizer(4, channels=6)
    out = q(w)
    step = q.step.detach().reshape(-1, 1)
    assert torch.allclose(step.squeeze(1), 2 * w.abs().mean(dim=1) / math.sqrt(7))
    levels = out.detach() / step
    assert torch.allclose(levels, levels.round(), atol=1e-5)
    assert levels.min() >= -8 and levels.max() <= 7


def test_gradients_pass_straight_through_inside_the_range_and_reach_the_step() -> None:
    x = torch.tensor([0.1, -0.2, 0.35, 50.0], requires_grad=True)
    q = LsqQuantizer(8)
    q.initialise(torch.tensor([0.1, -0.2, 0.35, 0.3]))
    q(x).sum().backward()
    assert x.grad is not None and x.grad.tolist() == [1.0, 1.0, 1.0, 0.0]  # clipped: no gradient
    assert q.step.grad is not None and q.step.grad.abs().item() > 0


def test_fixed_scales_are_min_max_and_never_trained() -> None:
    x = torch.tensor([[1.0, -4.0], [0.5, 0.25]])
    q = LsqQuantizer(8, channels=2, fixed=True)
    q(x)
    assert not q.step.requires_grad
    assert torch.allclose(q.step.detach(), torch.tensor([4.0 / 127, 0.5 / 127]))


@pytest.mark.parametrize(("text", "bits"), [("w8a8", (8, 8)), ("W4A8", (4, 8)), ("w2a8", (2, 8))])
def test_bit_widths_parse(text: str, bits: tuple[int, int]) -> None:
    assert parse_bits(text) == bits


def test_bad_bit_widths_are_refused() -> None:
    with pytest.raises(ConfigError, match="not of the form wNaM"):
        parse_bits("int8")
    with pytest.raises(ConfigError, match="2 to 8 bits"):
        LsqQuantizer(16)


def test_a_quantized_student_stays_close_to_its_float_self_and_exports_to_qdq(
    teacher_dir: Path, demo_data, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import onnx

    ck = load_checkpoint(teacher_dir)
    encoded = ck.encoder.encode([e.text for e in demo_data[1].examples[:64]])
    float_probs = predict_probs(ck.model, encoded)
    model = quantize_student(load_checkpoint(teacher_dir).model, 8, 8)
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == 6 * ck.arch.num_layers
    probs = predict_probs(model, encoded)  # the first batch sets the activation steps
    assert np.abs(probs - float_probs).max() < 0.05
    coarse = predict_probs(quantize_student(load_checkpoint(teacher_dir).model, 2, 8), encoded)
    assert np.abs(coarse - float_probs).max() > np.abs(probs - float_probs).max()
    path = export_onnx(model, tmp_path / "w8a8.onnx", encoded)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    onnx_out = onnx_probs(path, encoded)
    agree = (onnx_out.argmax(1) == probs.argmax(1)).mean()
    assert agree >= 0.95 and np.abs(onnx_out - probs).max() < 0.05
    with pytest.raises(ConfigError, match="already quantized"):
        quantize_student(model, 8, 8)


def test_packed_size_counts_quantized_weights_at_their_width(teacher_dir: Path) -> None:
    fp = load_checkpoint(teacher_dir).model
    full = 4 * sum(p.numel() for p in fp.parameters())
    w8 = packed_size_bytes(quantize_student(load_checkpoint(teacher_dir).model, 8, 8))
    w4 = packed_size_bytes(quantize_student(load_checkpoint(teacher_dir).model, 4, 8))
    assert packed_size_bytes(fp) == full
    assert w4 < w8 < full
