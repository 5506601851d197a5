"""ONNX graphs exported from the torch modules of ``torch_modules``.

Uses torch's TorchScript-based exporter (``dynamo=False``): it takes ~0.2 s per block
where the dynamo exporter takes seconds, and a profile plan exports hundreds of graphs.
Shapes are static (each spec has its own workload); opset 17 has LayerNormalization.
"""

from __future__ import annotations

import io
import warnings

import torch

from latbench.models.torch_modules import Built

OPSET = 17


def export_onnx(
    built: Built, *, dynamic_axes: dict[str, dict[int, str]] | None = None, dtype: torch.dtype | None = None
) -> bytes:
    """Serialized ONNX model of ``built.module`` for ``built.inputs``: static shapes unless
    ``dynamic_axes`` (``torch.onnx.export``'s) names some, floating-point weights and
    inputs cast to ``dtype`` when given (a strongly typed TensorRT network's precision)."""
    module, inputs = built.module, tuple(built.inputs)
    if dtype is not None:
        module = module.to(dtype)
        inputs = tuple(x.to(dtype) if x.is_floating_point() else x for x in inputs)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The TorchScript exporter warns that it is deprecated in favour of dynamo; it is
        # chosen on purpose here (speed), so that warning is not the user's concern.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            inputs,
            buffer,
            input_names=list(built.input_names),
            output_names=["output"],
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return buffer.getvalue()
