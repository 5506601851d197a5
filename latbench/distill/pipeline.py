"""One distillation job end to end: teacher + data + architecture → evaluated student files.

``distill_student`` loads the teacher checkpoint and the data, tokenises with the teacher's
tokenizer, trains (``latbench.distill.trainer.train``; proxy or full), evaluates the student and its
teacher on the development set, and writes the output folder:

* ``student/`` — the student checkpoint (Hugging Face layout when its layers are equal);
* ``student.onnx`` and ``student-int8.onnx`` — the FP32 graph and its INT8 variant;
* ``metrics.json`` — everything below, the format a search or a report reads;
* ``train-state.safetensors`` — the resumable state: rerunning the same command continues
  an interrupted run (or, when it finished, only re-evaluates).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from latbench.arch import Arch, Workload
from latbench.distill.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from latbench.distill.data import DataError, TextDataset, load_dataset
from latbench.distill.extract import LayerMap, check_extractable, student_for_teacher
from latbench.distill.model import Classifier, count_parameters
from latbench.distill.quality import Quality, quality
from latbench.distill.settings import DistillConfig
from latbench.distill.trainer import (
    Batches,
    check_losses,
    predict_probs,
    relation_heads,
    train,
)
from latbench.files import atomic_output

METRICS_FILE = "metrics.json"
#: FLOPs are quoted for one sequence of 128 tokens (as latency is), or of the model's
#: longest when that is shorter.
FLOPS_SEQ_LEN = 128
PROXY_DEV_EXAMPLES = 1000


@dataclass(frozen=True)
class DistillOutcome:
    arch: Arch
    teacher: Quality
    student: Quality
    int8: Quality | None
    student_params: int
    teacher_params: int
    student_flops: int
    teacher_flops: int
    steps: int
    train_seconds: float
    resumed_from: int
    history: tuple[dict[str, float], ...]
    out_dir: Path
    files: tuple[str, ...]

    def to_dict(self, config: DistillConfig, teacher_path: str, data_source: str) -> dict[str, Any]:
        return {
            "arch": self.arch.to_dict(),
            "teacher": {
                "path": teacher_path,
                "params": self.teacher_params,
                "quality": self.teacher.to_dict(),
                "flops": self.teacher_flops,
            },
            "student": {
                "params": self.student_params,
                "quality": self.student.to_dict(),
                "flops": self.student_flops,
                "flops_seq_len": _flops_workload(self.arch).seq_len,
            },
            "int8": None if self.int8 is None else {"quality": self.int8.to_dict()},
            "training": {
                "steps": self.steps,
                "train_seconds": self.train_seconds,
                "resumed_from": self.resumed_from,
                "history": list(self.history),
            },
            "config": config.to_dict(),
            "data": data_source,
            "files": list(self.files),
        }


def encode(checkpoint: Checkpoint, dataset: TextDataset) -> Batches:
    if dataset.num_labels != checkpoint.model.config.num_labels:
        raise DataError(
            f"{dataset.source} has {dataset.num_labels} labels ({', '.join(dataset.label_names)}) but the "
            f"teacher predicts {checkpoint.model.config.num_labels} ({', '.join(checkpoint.label_names)})"
        )
    pairs = [e.text_pair for e in dataset.examples] if dataset.has_pairs else None
    encoded = checkpoint.encoder.encode([e.text for e in dataset.examples], pairs)
    return Batches(encoded, torch.as_tensor(dataset.labels, dtype=torch.int64))


def load_data(
    train_path: str | Path, dev_path: str | Path | None, teacher: Checkpoint, dev_fraction: float, seed: int
) -> tuple[TextDataset, TextDataset]:
    """Training and development sets; without ``dev_path`` a directory's dev split is
    used when it has one, else ``dev_fraction`` of the training data is held out."""
    names = teacher.label_names
    label_names = names if not all(n.startswith("LABEL_") for n in names) else None
    train_set = load_dataset(train_path, label_names=label_names)
    if dev_path is not None:
        return train_set, load_dataset(dev_path, label_names=label_names)
    if Path(train_path).is_dir():
        try:
            return train_set, load_dataset(train_path, split="validation", label_names=label_names)
        except DataError:
            pass
    return train_set.split(1.0 - dev_fraction, seed)


def distill_student(
    teacher_path: str | Path,
    train_path: str | Path,
    arch: Arch,
    out_dir: str | Path,
    config: DistillConfig,
    *,
    dev_path: str | Path | None = None,
    dev_fraction: float = 0.1,
    int8: bool = True,
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
    teacher: Checkpoint | None = None,
    datasets: tuple[TextDataset, TextDataset] | None = None,
    quantize: tuple[int, int, bool] | None = None,
) -> DistillOutcome:
    """Distil ``arch`` from the teacher at ``teacher_path`` and write ``out_dir``
    (``teacher`` and ``datasets``, when given, are what was already loaded from them).
    ``quantize`` (weight bits, activation bits, fixed scales) trains with LSQ quantizers
    (KDLSQ): the ONNX export is then a QDQ graph ONNX Runtime runs on integer kernels,
    and no dynamic INT8 variant is made."""
    from latbench.distill.export import export_onnx, onnx_probs, quantize_int8

    teacher = teacher or load_checkpoint(teacher_path)
    check_settings(teacher, arch, config)
    train_set, dev_set = datasets or load_data(train_path, dev_path, teacher, dev_fraction, config.seed)
    if config.max_examples:
        train_set = train_set.subset(config.max_examples, config.seed)
        dev_set = dev_set.subset(min(len(dev_set), PROXY_DEV_EXAMPLES), config.seed)
    data, dev = encode(teacher, train_set), encode(teacher, dev_set)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = train(
        teacher.model, arch, data, config, dev=dev, state_dir=out, on_step=on_step, quantize=quantize
    )
    student = result.student
    teacher_probs = result.teacher_dev_probs
    assert teacher_probs is not None  # train() was given the teacher and the dev set
    labels = dev.labels.numpy()
    teacher_quality = quality(labels, teacher_probs)
    student_quality = quality(labels, predict_probs(student, dev.encoded), teacher_probs)
    files = [
        f"student/{name}"
        for name in save_checkpoint(out / "student", student, teacher.encoder, teacher.label_names)
    ]
    export_onnx(student, out / "student.onnx", dev.encoded)
    files.append("student.onnx")
    int8_quality = None
    if int8 and quantize is None:
        quantize_int8(out / "student.onnx", out / "student-int8.onnx")
        files.append("student-int8.onnx")
        int8_quality = quality(labels, onnx_probs(out / "student-int8.onnx", dev.encoded), teacher_probs)
    outcome = DistillOutcome(
        arch=student.arch,
        teacher=teacher_quality,
        student=student_quality,
        int8=int8_quality,
        student_params=count_parameters(student),
        teacher_params=count_parameters(teacher.model),
        student_flops=student.arch.flops(_flops_workload(student.arch)),
        teacher_flops=teacher.arch.flops(_flops_workload(student.arch)),
        steps=result.steps,
        train_seconds=result.train_seconds,
        resumed_from=result.resumed_from,
        history=tuple(result.history),
        out_dir=out,
        files=(*files, METRICS_FILE),
    )
    document = outcome.to_dict(config, str(teacher_path), train_set.source)
    if quantize is not None:
        from latbench.distill.quant import packed_size_bytes, quantization_of

        document["quantization"] = {
            **(quantization_of(student) or {}),
            "packed_bytes": packed_size_bytes(student),
        }
    document["written_at_unix_s"] = time.time()
    with atomic_output(out / METRICS_FILE) as tmp:
        Path(tmp).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return outcome


def check_settings(teacher: Checkpoint, arch: Arch, config: DistillConfig) -> None:
    """Fail now, before any data is read or step is taken, on settings that cannot work:
    a layer map the student does not fit, a loss the architectures cannot compare, an
    extraction from a narrower teacher."""
    arch = student_for_teacher(arch, teacher.arch)
    layer_map = LayerMap.build(config.layer_map, arch.num_layers, teacher.arch.num_layers)
    weights = config.losses.active()
    check_losses(weights, teacher.arch, arch, layer_map)
    if "relations" in weights:
        for s, t in layer_map.pairs:
            t_width, s_width = teacher.arch.layers[t - 1].attn_width, arch.layers[s - 1].attn_width
            relation_heads(config.relation_heads, teacher.arch.heads[t - 1], t_width, s_width)
    if config.init == "etd":
        check_extractable(teacher.arch, arch, layer_map.init)


def _flops_workload(arch: Arch) -> Workload:
    return Workload(1, min(FLOPS_SEQ_LEN, arch.max_positions))


def proxy_config(config: DistillConfig) -> DistillConfig:
    """``config`` shortened to a proxy run (300 steps on 2,000 examples) unless it
    already fixes its own step count or subset."""
    proxy = DistillConfig.proxy()
    return replace(
        config,
        steps=config.steps or proxy.steps,
        max_examples=config.max_examples or proxy.max_examples,
        checkpoint_every=0,
    )


class TaskScorer:
    """Scores students on the teacher's task without distilling each from scratch: as they
    are (``direct``: a student read off a supernet keeps the teacher's head) or after a
    short fine-tune from their own weights (``finetuned``: ``config``'s losses and steps on
    at most ``config.max_examples`` training examples). The development set is cut to
    ``max_dev`` examples, and the teacher's distributions on it are computed once."""

    def __init__(
        self,
        teacher: Checkpoint,
        datasets: tuple[TextDataset, TextDataset],
        *,
        max_dev: int = PROXY_DEV_EXAMPLES,
        seed: int = 0,
    ) -> None:
        train_set, dev_set = datasets
        dev_set = dev_set.subset(min(len(dev_set), max_dev), seed) if max_dev else dev_set
        self.teacher = teacher
        self.train_set = train_set
        self.dev = encode(teacher, dev_set)
        self.teacher_probs = predict_probs(teacher.model, self.dev.encoded)
        self.teacher_quality = quality(self.dev.labels.numpy(), self.teacher_probs)
        self._encoded: dict[tuple[int, int], Batches] = {}

    def direct(self, student: Classifier) -> Quality:
        return quality(self.dev.labels.numpy(), predict_probs(student, self.dev.encoded), self.teacher_probs)

    def finetuned(self, student: Classifier, config: DistillConfig) -> Quality:
        key = (config.max_examples, config.seed)
        if key not in self._encoded:
            subset = (
                self.train_set.subset(config.max_examples, config.seed)
                if config.max_examples
                else self.train_set
            )
            self._encoded[key] = encode(self.teacher, subset)
        result = train(self.teacher.model, student.arch, self._encoded[key], config, initial=student)
        return self.direct(result.student)
