"""Learned step size quantization (LSQ, Esser et al. 2020) of students, for KDLSQ-BERT's
distillation with quantization-aware training.

``quantize_student(model, weight_bits, activation_bits)`` replaces every linear layer of
the encoder (queries, keys, values, the attention output and both FFN layers) with a
``QuantLinear``: its weight goes through a per-output-channel signed quantizer and its
input through a per-tensor signed quantizer. Each quantizer's step size is a trained
parameter, as LSQ prescribes:

* forward: ``x_q = round(clamp(x / s, -Q_n, Q_p)) * s`` with the rounding's gradient passed
  straight through (the STE), so the weights still learn;
* the step's gradient is scaled by ``g = 1 / sqrt(N * Q_p)`` (N: the elements one step
  serves), which keeps it in proportion to the weights' updates;
* initialisation: ``s = 2 * mean(|x|) / sqrt(Q_p)`` from the weights (per channel), and
  for activations from the first batch that passes (then fixed as a trained parameter).

``fixed_scales=True`` gives the ablation the issue asks for: min-max scales computed once
and never trained (the classic post-training scale), with the same rounding.

The embeddings, the layer norms, the pooler and the classification head stay in floating
point (a small share of the compute). In ONNX export (``torch.onnx.is_in_onnx_export``)
each quantizer becomes ``QuantizeLinear``/``DequantizeLinear`` with its learned step as
the scale and zero point 0; weights below 8 bits are first snapped to their b-bit grid, so
the 8-bit QDQ graph carries them exactly (their latency is that of the 8-bit kernels; their
packed size is ``packed_size_bytes``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from latbench.distill.model import Classifier
from latbench.errors import ConfigError

QUANTIZED_LAYERS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")


def round_pass(x: Tensor) -> Tensor:
    """``round(x)`` forward, identity backward (the straight-through estimator)."""
    return (x.round() - x).detach() + x


def grad_scale(x: Tensor, scale: float) -> Tensor:
    """``x`` forward, its gradient multiplied by ``scale`` backward."""
    return (x - x * scale).detach() + x * scale


class LsqQuantizer(nn.Module):
    """Signed ``bits``-bit quantizer with a learned step: per tensor, or per channel along
    dimension 0 when ``channels`` > 0."""

    def __init__(self, bits: int, channels: int = 0, *, fixed: bool = False) -> None:
        super().__init__()
        if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
            raise ConfigError(f"quantization needs 2 to 8 bits, got {bits!r}")
        self.bits = bits
        self.channels = channels
        self.fixed = fixed
        self.qn, self.qp = 2 ** (bits - 1), 2 ** (bits - 1) - 1
        self.step = nn.Parameter(torch.ones(max(1, channels)), requires_grad=not fixed)
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def _shape(self, x: Tensor) -> tuple[int, ...]:
        return (-1, *([1] * (x.dim() - 1))) if self.channels else (1,)

    @torch.no_grad()
    def initialise(self, x: Tensor) -> None:
        if self.fixed:  # min-max: the largest magnitude maps to the largest level
            dims = tuple(range(1, x.dim())) if self.channels else tuple(range(x.dim()))
            peak = x.abs().amax(dim=dims) if dims else x.abs()
            step = peak / self.qp
        else:
            mean = x.abs().flatten(1).mean(dim=1) if self.channels else x.abs().mean().reshape(1)
            step = 2 * mean / math.sqrt(self.qp)
        self.step.copy_(step.clamp(min=1e-8).reshape(self.step.shape))
        self.initialised.fill_(True)

    def forward(self, x: Tensor) -> Tensor:
        if not bool(self.initialised):
            self.initialise(x.detach())
        if torch.onnx.is_in_onnx_export():
            return self._export(x)
        per_step = x.numel() / max(1, self.channels or 1)
        step = self.step if self.fixed else grad_scale(self.step, 1.0 / math.sqrt(per_step * self.qp))
        step = step.abs().clamp(min=1e-8).reshape(self._shape(x))
        return round_pass(torch.clamp(x / step, -self.qn, self.qp)) * step

    def _export(self, x: Tensor) -> Tensor:
        step = self.step.detach().abs().clamp(min=1e-8)
        if self.channels:
            snapped = torch.clamp(torch.round(x / step.reshape(self._shape(x))), -self.qn, self.qp)
            snapped = snapped * step.reshape(self._shape(x))
            zero = torch.zeros(self.channels, dtype=torch.int32)
            return torch.fake_quantize_per_channel_affine(snapped, step, zero, 0, -128, 127)
        return torch.fake_quantize_per_tensor_affine(x, float(step), 0, -128, 127)


class QuantLinear(nn.Module):
    """A linear layer whose weight and input are quantized (LSQ); same ``weight`` and
    ``bias`` parameters as the ``nn.Linear`` it replaces."""

    def __init__(
        self, linear: nn.Linear, weight_bits: int, activation_bits: int, *, fixed: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().clone())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_quant = LsqQuantizer(weight_bits, linear.out_features, fixed=fixed)
        self.input_quant = LsqQuantizer(activation_bits, fixed=fixed)
        self.weight_quant.initialise(self.weight.detach())

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(self.input_quant(x), self.weight_quant(self.weight), self.bias)


def quantize_student(
    model: Classifier, weight_bits: int, activation_bits: int = 8, *, fixed_scales: bool = False
) -> Classifier:
    """``model`` with every encoder linear layer replaced by a ``QuantLinear`` (in place;
    returned for convenience). Activation steps are set by the first batch that passes."""
    for layer in model.bert.encoder.layer:
        for path in QUANTIZED_LAYERS:
            owner = layer.attention.self if path in ("query", "key", "value") else layer
            *parents, name = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            linear = getattr(owner, name)
            if isinstance(linear, QuantLinear):
                raise ConfigError("the model is already quantized")
            setattr(owner, name, QuantLinear(linear, weight_bits, activation_bits, fixed=fixed_scales))
    return model


def parse_bits(text: str) -> tuple[int, int]:
    """``"w4a8"`` -> (4, 8)."""
    lowered = text.strip().lower()
    if lowered.startswith("w") and "a" in lowered:
        weight, _, activation = lowered[1:].partition("a")
        if weight.isdigit() and activation.isdigit():
            return int(weight), int(activation)
    raise ConfigError(f"--quantize {text!r} is not of the form wNaM, e.g. w8a8 or w4a8")


def check_bits(weight_bits: int, activation_bits: int) -> tuple[int, int]:
    """Refuse widths ONNX Runtime's integer kernels cannot carry: weights 2-8 bits, activations 8."""
    if not 2 <= weight_bits <= 8:
        raise ConfigError(f"weights are quantized to 2-8 bits, got {weight_bits}")
    if activation_bits != 8:
        raise ConfigError(
            f"activations are quantized to 8 bits (ONNX Runtime's integer kernels), got {activation_bits}"
        )
    return weight_bits, activation_bits


def packed_size_bytes(model: nn.Module) -> int:
    """The model's size with quantized weights packed at their bit width (steps and
    everything else at 32 bits)."""
    quantized = {id(m.weight) for m in model.modules() if isinstance(m, QuantLinear)}
    bits_of = {id(m.weight): m.weight_quant.bits for m in model.modules() if isinstance(m, QuantLinear)}
    total_bits = 0
    for p in model.parameters():
        total_bits += p.numel() * (bits_of[id(p)] if id(p) in quantized else 32)
    return math.ceil(total_bits / 8)


def quantization_of(model: nn.Module) -> dict[str, int | bool] | None:
    """How ``model`` is quantized (what a checkpoint records), None when it is not."""
    layers = [m for m in model.modules() if isinstance(m, QuantLinear)]
    if not layers:
        return None
    first = layers[0]
    return {
        "weight_bits": first.weight_quant.bits,
        "activation_bits": first.input_quant.bits,
        "fixed_scales": first.weight_quant.fixed,
    }
