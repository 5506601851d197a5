"""Teacher→student layer maps, and students extracted from their teacher (ETD).

**Layer maps.** Student layer ``m`` (1-based) learns from teacher layer ``g(m)``:

* ``uniform`` — ``g(m) = round(m * L_t / L_s)`` (TinyBERT's uniform strategy; the last
  student layer always learns from the last teacher layer);
* ``last`` — only the last layers are paired (MiniLM); the student is still initialised
  from uniformly spaced teacher layers;
* an explicit list — ``g(m)`` for every student layer, e.g. ``[2, 4, 6, 8]``.

Hidden-state losses also pair the embedding outputs (layer 0 with layer 0).

**Extraction** (ETD, Chen et al. 2021, "Extract then Distill"): a student no wider than its
teacher starts from the teacher's weights. Its layer ``m`` is a copy of teacher layer
``g(m)`` cut down to the student's size, keeping the most important parts:

* hidden dimensions (the residual stream, shared by every layer and the embeddings),
* attention heads of each layer, and within a head the dimensions a smaller head keeps,
* FFN neurons of each layer.

Importance is the first-order Taylor score used by Michel et al. (2019) and DynaBERT: the
magnitude of the loss gradient with respect to a multiplier on each head, neuron and hidden
dimension (``latbench.distill.model.Masks``), summed over a few batches. Within-head dimensions are
ranked by the weight norms of their query, key, value and output rows. A student equal to
its teacher is therefore an exact copy, and dropping a unit whose weights are zero leaves
the outputs unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn

from latbench.arch import Arch
from latbench.distill.checkpoint import Encoded
from latbench.distill.model import Classifier, Masks
from latbench.errors import ConfigError

LAYER_MAP_STRATEGIES = ("uniform", "last")


@dataclass(frozen=True)
class LayerMap:
    """Which teacher layer each student layer learns from (both 1-based).

    ``pairs`` are the (student, teacher) layers the losses compare; ``init`` is the teacher
    layer each student layer is extracted from."""

    pairs: tuple[tuple[int, int], ...]
    init: tuple[int, ...]

    @classmethod
    def build(cls, mapping: str | Sequence[int], student_layers: int, teacher_layers: int) -> LayerMap:
        uniform = tuple(
            max(1, round(m * teacher_layers / student_layers)) for m in range(1, student_layers + 1)
        )
        if isinstance(mapping, str):
            if mapping not in LAYER_MAP_STRATEGIES:
                raise ConfigError(
                    f"unknown layer map {mapping!r}; use {', '.join(LAYER_MAP_STRATEGIES)} "
                    "or a list of teacher layers, one per student layer"
                )
            if student_layers > teacher_layers:
                raise ConfigError(
                    f"the student has {student_layers} layers but the teacher only {teacher_layers}; "
                    "a layer map pairs each student layer with a different teacher layer, so give "
                    "an explicit list or a shallower student"
                )
            if mapping == "uniform":
                return cls(tuple(zip(range(1, student_layers + 1), uniform, strict=True)), uniform)
            return cls(((student_layers, teacher_layers),), uniform)
        layers = list(mapping)
        if len(layers) != student_layers:
            raise ConfigError(
                f"the layer map names {len(layers)} teacher layers but the student has "
                f"{student_layers}; give one teacher layer per student layer"
            )
        for t in layers:
            if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= teacher_layers:
                raise ConfigError(
                    f"layer map entry {t!r} is not a teacher layer; "
                    f"the teacher has layers 1..{teacher_layers}"
                )
        return cls(tuple(zip(range(1, student_layers + 1), layers, strict=True)), tuple(layers))

    def to_dict(self) -> dict[str, list]:
        return {"pairs": [list(p) for p in self.pairs], "init": list(self.init)}


@dataclass(frozen=True)
class Importance:
    heads: tuple[np.ndarray, ...]  # per teacher layer, one score per head
    neurons: tuple[np.ndarray, ...]  # per teacher layer, one score per FFN neuron
    hidden: np.ndarray  # one score per hidden dimension


def importance(model: Classifier, batches: Iterable[tuple[Encoded, Tensor]]) -> Importance:
    """Taylor importance of heads, FFN neurons and hidden dimensions on labelled ``batches``."""
    masks = Masks.ones(model.arch)
    was_training = model.training
    model.eval()
    seen = 0
    for encoded, labels in batches:
        logits = model(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids, masks=masks).logits
        loss = nn.functional.cross_entropy(logits, labels)
        grads = torch.autograd.grad(loss, [*masks.heads, *masks.neurons, masks.hidden])
        if seen == 0:
            total = [g.abs() for g in grads]
        else:
            total = [t + g.abs() for t, g in zip(total, grads, strict=True)]
        seen += 1
    model.train(was_training)
    if seen == 0:
        raise ConfigError("importance scoring needs at least one batch of data")
    layers = model.arch.num_layers
    as_np = [t.detach().numpy() for t in total]
    return Importance(tuple(as_np[:layers]), tuple(as_np[layers : 2 * layers]), as_np[-1])


def student_for_teacher(arch: Arch, teacher: Arch) -> Arch:
    """``arch`` reading the teacher's inputs: its vocabulary and token types, and no more
    positions than the teacher has."""
    return Arch(
        hidden=arch.hidden,
        heads=arch.heads,
        ffn=arch.ffn,
        vocab_size=teacher.vocab_size,
        max_positions=min(arch.max_positions, teacher.max_positions),
        type_vocab_size=teacher.type_vocab_size,
        head_size=arch.head_size,
    )


def check_extractable(teacher: Arch, student: Arch, init_layers: Sequence[int]) -> None:
    """Raise ``ConfigError`` saying why ``student`` cannot be cut out of ``teacher``."""
    problems = []
    if student.hidden > teacher.hidden:
        problems.append(f"hidden {student.hidden} > teacher's {teacher.hidden}")
    if student.vocab_size != teacher.vocab_size:
        problems.append(f"vocabulary {student.vocab_size} != teacher's {teacher.vocab_size}")
    for m, t in enumerate(init_layers):
        sl, tl = student.layers[m], teacher.layers[t - 1]
        if sl.ffn > tl.ffn:
            problems.append(f"student layer {m + 1} has FFN {sl.ffn} > teacher layer {t}'s {tl.ffn}")
        if sl.attn_width > tl.attn_width:
            problems.append(
                f"student layer {m + 1} has attention width {sl.attn_width} "
                f"({sl.heads} heads x {sl.head_dim}) > teacher layer {t}'s {tl.attn_width}"
            )
    if problems:
        raise ConfigError(
            "this student cannot be extracted from the teacher: "
            + "; ".join(problems[:3])
            + ("; …" if len(problems) > 3 else "")
            + " (use random initialisation, or a narrower student)"
        )


def extract_student(
    teacher: Classifier, arch: Arch, init_layers: Sequence[int], scores: Importance
) -> Classifier:
    """A student of architecture ``arch`` whose weights are cut from ``teacher``."""
    t_arch = teacher.arch
    check_extractable(t_arch, arch, init_layers)
    arch = student_for_teacher(arch, t_arch)
    student = Classifier(replace(teacher.config, arch=arch))  # the teacher's constants and head
    src = teacher.state_dict()
    hid = _top(scores.hidden, arch.hidden)
    new: dict[str, Tensor] = {}
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        weight = src[f"bert.embeddings.{name}.weight"]
        rows = arch.max_positions if name == "position_embeddings" else weight.shape[0]
        new[f"bert.embeddings.{name}.weight"] = weight[:rows, hid]
    _norm(new, src, "bert.embeddings.LayerNorm", "bert.embeddings.LayerNorm", hid)
    for m, t in enumerate(init_layers):
        s_pre, t_pre = f"bert.encoder.layer.{m}", f"bert.encoder.layer.{t - 1}"
        s_layer, t_layer = arch.layers[m], t_arch.layers[t - 1]
        att = _attention_dims(src, t_pre, t_layer.heads, t_layer.head_dim, scores.heads[t - 1], s_layer)
        for proj in ("query", "key", "value"):
            key = f"{t_pre}.attention.self.{proj}"
            new[f"{s_pre}.attention.self.{proj}.weight"] = src[f"{key}.weight"][att][:, hid]
            new[f"{s_pre}.attention.self.{proj}.bias"] = src[f"{key}.bias"][att]
        new[f"{s_pre}.attention.output.dense.weight"] = src[f"{t_pre}.attention.output.dense.weight"][hid][
            :, att
        ]
        new[f"{s_pre}.attention.output.dense.bias"] = src[f"{t_pre}.attention.output.dense.bias"][hid]
        _norm(new, src, f"{s_pre}.attention.output.LayerNorm", f"{t_pre}.attention.output.LayerNorm", hid)
        neurons = _top(scores.neurons[t - 1], s_layer.ffn)
        new[f"{s_pre}.intermediate.dense.weight"] = src[f"{t_pre}.intermediate.dense.weight"][neurons][:, hid]
        new[f"{s_pre}.intermediate.dense.bias"] = src[f"{t_pre}.intermediate.dense.bias"][neurons]
        new[f"{s_pre}.output.dense.weight"] = src[f"{t_pre}.output.dense.weight"][hid][:, neurons]
        new[f"{s_pre}.output.dense.bias"] = src[f"{t_pre}.output.dense.bias"][hid]
        _norm(new, src, f"{s_pre}.output.LayerNorm", f"{t_pre}.output.LayerNorm", hid)
    new["bert.pooler.dense.weight"] = src["bert.pooler.dense.weight"][hid][:, hid]
    new["bert.pooler.dense.bias"] = src["bert.pooler.dense.bias"][hid]
    new["classifier.weight"] = src["classifier.weight"][:, hid]
    new["classifier.bias"] = src["classifier.bias"]
    student.load_state_dict({k: v.clone() for k, v in new.items()})
    return student


def _top(scores: np.ndarray, k: int) -> Tensor:
    """Indices of the ``k`` highest scores, in their original order (ties: lower index)."""
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return torch.as_tensor(np.sort(order), dtype=torch.int64)


def _norm(new: dict[str, Tensor], src: dict[str, Tensor], s_key: str, t_key: str, hid: Tensor) -> None:
    new[f"{s_key}.weight"] = src[f"{t_key}.weight"][hid]
    new[f"{s_key}.bias"] = src[f"{t_key}.bias"][hid]


def _attention_dims(
    src: dict[str, Tensor], prefix: str, t_heads: int, t_head_dim: int, head_scores: np.ndarray, student
) -> Tensor:
    """Rows of the teacher's Q/K/V kept by the student.

    When the student's heads are no more and no larger than the teacher's, each student
    head comes from one of the teacher's most important heads, keeping that head's
    strongest dimensions. Otherwise (larger student heads) the student's attention width
    is filled with whole teacher heads in order of importance, the last one cut short.
    """
    q = src[f"{prefix}.attention.self.query.weight"].norm(dim=1)
    k = src[f"{prefix}.attention.self.key.weight"].norm(dim=1)
    v = src[f"{prefix}.attention.self.value.weight"].norm(dim=1)
    o = src[f"{prefix}.attention.output.dense.weight"].norm(dim=0)
    dim_scores = (q * k + v * o).numpy()
    if student.heads <= t_heads and student.head_dim <= t_head_dim:
        rows = []
        for h in _top(head_scores, student.heads).tolist():
            base = h * t_head_dim
            rows.append(_top(dim_scores[base : base + t_head_dim], student.head_dim) + base)
        return torch.cat(rows)
    ranked_heads = np.argsort(-np.asarray(head_scores), kind="stable")
    order = [
        h * t_head_dim + d
        for h in ranked_heads
        for d in np.argsort(-dim_scores[h * t_head_dim : (h + 1) * t_head_dim], kind="stable")
    ]
    return torch.as_tensor(np.sort(order[: student.attn_width]), dtype=torch.int64)
