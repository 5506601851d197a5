"""Students for deployment: ONNX export and an INT8 variant, evaluated through ONNX Runtime.

The ONNX graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64,
[batch, sequence], both axes dynamic; no ``token_type_ids`` for a model with one token
type, as RoBERTa's and DistilBERT's students have, just as their Hugging Face models take
none) and returns ``logits``. The INT8 variant is ONNX
Runtime's dynamic quantization (``quantize_dynamic``: weights of the matrix products
stored as signed 8-bit integers, activations quantized on the fly), the usual way to
deploy a BERT on a CPU; its accuracy and loyalty are measured on the same data as the
FP32 student's, so a report can show what quantization costs and buys.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from latbench.distill.checkpoint import Encoded
from latbench.distill.model import Classifier, LogitsOnly
from latbench.files import atomic_output

OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def export_onnx(model: Classifier, path: str | Path, example: Encoded) -> Path:
    """Write ``model`` (eval mode) as an ONNX graph with dynamic batch and sequence axes."""
    dest = Path(path)
    model.eval()
    names = input_names(model)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names}
    dynamic["logits"] = {0: "batch"}
    inputs = (example.input_ids[:2], example.attention_mask[:2], example.token_type_ids[:2])[: len(names)]
    with atomic_output(dest) as tmp, warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns that it is deprecated; it is chosen on purpose
        # (fast, no extra dependencies), so the warning is not the user's concern.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LogitsOnly(model),
            inputs,
            tmp,
            input_names=list(names),
            output_names=["logits"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return dest


def input_names(model: Classifier) -> tuple[str, ...]:
    """The ONNX inputs of ``model``: token types only when it has more than one."""
    return INPUT_NAMES if model.config.arch.type_vocab_size > 1 else INPUT_NAMES[:2]


def quantize_int8(onnx_path: str | Path, out_path: str | Path) -> Path:
    """ONNX Runtime dynamic INT8 quantization of an exported student."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dest = Path(out_path)
    root = logging.getLogger()
    level = root.level
    # quantize_dynamic logs a generic "consider pre-processing" advice on the root logger
    # (shape inference for static quantization); it does not apply to dynamic quantization.
    root.setLevel(logging.ERROR)
    try:
        with atomic_output(dest) as tmp:
            quantize_dynamic(str(onnx_path), tmp, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return dest


def onnx_probs(path: str | Path, encoded: Encoded, batch_size: int = 64, threads: int = 0) -> np.ndarray:
    """Class probabilities [n, classes] from an ONNX classifier run by ONNX Runtime (CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    out = []
    for i in range(0, len(encoded), batch_size):
        part = encoded.take(torch.arange(i, min(i + batch_size, len(encoded))))
        feeds = {
            "input_ids": part.input_ids.numpy(),
            "attention_mask": part.attention_mask.numpy(),
            "token_type_ids": part.token_type_ids.numpy(),
        }
        feeds = {name: value for name, value in feeds.items() if name in wanted}
        logits = session.run(["logits"], feeds)[0].astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        out.append(probs / probs.sum(axis=1, keepdims=True))
    return np.concatenate(out)
