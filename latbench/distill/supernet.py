"""A weight-sharing super language model: one set of weights that serves every student.

AutoDistil's SuperLM and NAS-BERT's supernet train one encoder at the largest size of a
search space and read each smaller student off it by slicing. ``Supernet`` keeps its
weights in one ordinary ``Classifier`` of the space's largest shape (``max_arch``) and
serves an architecture ``arch`` by taking, from every weight, its leading part of the
student's shape:

* the first ``hidden`` dimensions of the residual stream (embeddings, every layer's
  inputs and outputs, the layer norms, the pooler and the classification head);
* the first ``attn_width`` rows of each layer's query, key and value (the first heads,
  when heads have a fixed width; with BERT's ``hidden / heads`` heads the width is the
  hidden size, re-split into the student's heads);
* the first ``ffn`` neurons of each layer's feed-forward network;
* ``num_layers`` of the supernet's layers, chosen by ``layer_rule``: ``spread`` (DynaBERT's
  depth rule, the layers a uniform layer map would pair: 2, 4, 6 of 6 for a 3-layer
  student) or ``first`` (the first layers).

A forward pass for ``arch`` runs the very ``Classifier`` code a plain student runs
(``torch.func.functional_call`` on a weightless skeleton of that architecture, fed views
of the supernet's weights), so ``extract(arch)`` (a plain ``Classifier`` holding copies of
those slices) computes exactly what the supernet computed, and gradients of any student
land in the shared weights. An extracted student is the same model type the trainer, the
checkpoints and the ONNX export use.

Slicing keeps the leading units, so the supernet is initialised from its teacher with the
most important units first (ETD's importance, ``rank_by_importance``: a permutation of
heads, within-head dimensions, FFN neurons and hidden dimensions that leaves the teacher's
function unchanged), and training teaches every prefix to work on its own.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from latbench.arch import Arch
from latbench.distill.extract import Importance, LayerMap
from latbench.distill.model import Classifier, ClassifierConfig, Outputs
from latbench.errors import ConfigError
from latbench.files import atomic_output

LAYER_RULES = ("spread", "first")
SUPERNET_FILE = "supernet.json"
ORDER_FILE = "teacher-order.safetensors"
_SKELETONS_KEPT = 64


class ArchSpace(Protocol):
    """What a supernet needs of a search space (``latbench.search.space.SearchSpace`` is
    one): a name, random students, its extremes, membership, and a JSON description."""

    name: str

    def sample(self, rng: Any) -> Arch: ...

    def largest(self) -> Arch: ...

    def smallest(self) -> Arch: ...

    def why_not(self, arch: Arch) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


def spread_layers(layers: int, total: int) -> tuple[int, ...]:
    """The 0-based supernet layers a ``layers``-deep student uses under the spread rule:
    ``round(m * total / layers)`` for m = 1..layers (the last layer always included)."""
    return tuple(t - 1 for t in LayerMap.build("uniform", layers, total).init)


def covering_arch(archs: Sequence[Arch]) -> Arch:
    """The smallest uniform architecture every one of ``archs`` can be sliced from."""
    if not archs:
        raise ConfigError("a supernet needs at least one architecture to cover")
    first = archs[0]
    for a in archs:
        if (a.vocab_size, a.type_vocab_size) != (first.vocab_size, first.type_vocab_size):
            raise ConfigError("the architectures of one supernet must share a vocabulary and token types")
    layers = max(a.num_layers for a in archs)
    hidden = max(a.hidden for a in archs)
    width = max(shape.attn_width for a in archs for shape in a.layers)
    ffn = max(max(a.ffn) for a in archs)
    positions = max(a.max_positions for a in archs)
    # Any head count whose heads tile the width: the supernet's own heads are never used.
    head_size = width if width != hidden else 0
    return Arch(
        hidden=hidden,
        heads=(1,) * layers,
        ffn=(ffn,) * layers,
        vocab_size=first.vocab_size,
        max_positions=positions,
        type_vocab_size=first.type_vocab_size,
        head_size=head_size,
    )


class Supernet(nn.Module):
    """Shared weights of the largest student, sliced to serve any smaller one."""

    def __init__(self, config: ClassifierConfig, layer_rule: str = "spread") -> None:
        super().__init__()
        if layer_rule not in LAYER_RULES:
            raise ConfigError(f"unknown layer rule {layer_rule!r}; use {' or '.join(LAYER_RULES)}")
        self.model = Classifier(config)
        self.layer_rule = layer_rule
        #: How the teacher's units were reordered when the supernet was cut from it
        #: (``ranking_order``), None when it started from random weights.
        self.order: dict[str, Tensor] | None = None
        self._skeletons: OrderedDict[Arch, Classifier] = OrderedDict()

    @property
    def config(self) -> ClassifierConfig:
        return self.model.config

    @property
    def max_arch(self) -> Arch:
        return self.model.arch

    # --- which weights a student uses -------------------------------------------------
    def layer_indices(self, arch: Arch) -> tuple[int, ...]:
        total = self.max_arch.num_layers
        if self.layer_rule == "first":
            return tuple(range(arch.num_layers))
        return spread_layers(arch.num_layers, total)

    def why_not(self, arch: Arch) -> str:
        """Why ``arch`` cannot be served ("" when it can)."""
        big = self.max_arch
        if arch.num_layers > big.num_layers:
            return f"{arch.num_layers} layers > the supernet's {big.num_layers}"
        if arch.hidden > big.hidden:
            return f"hidden {arch.hidden} > the supernet's {big.hidden}"
        if (arch.vocab_size, arch.type_vocab_size) != (big.vocab_size, big.type_vocab_size):
            return (
                f"vocabulary {arch.vocab_size} / {arch.type_vocab_size} token types differ from the "
                f"supernet's {big.vocab_size} / {big.type_vocab_size}"
            )
        if arch.max_positions > big.max_positions:
            return f"{arch.max_positions} positions > the supernet's {big.max_positions}"
        width, ffn = big.layers[0].attn_width, big.ffn[0]
        for i, shape in enumerate(arch.layers):
            if shape.attn_width > width:
                return f"layer {i} has attention width {shape.attn_width} > the supernet's {width}"
            if shape.ffn > ffn:
                return f"layer {i} has FFN {shape.ffn} > the supernet's {ffn}"
        return ""

    def check(self, arch: Arch) -> None:
        problem = self.why_not(arch)
        if problem:
            raise ConfigError(f"this supernet cannot serve the architecture: {problem}")

    def student_config(self, arch: Arch) -> ClassifierConfig:
        return replace(self.config, arch=arch)

    def sliced(self, arch: Arch) -> dict[str, Tensor]:
        """The student's parameters as views of the shared weights (gradients flow back)."""
        self.check(arch)
        skeleton = self._skeleton(arch)
        shared = dict(self.model.named_parameters())
        layers = self.layer_indices(arch)
        out = {}
        for name, param in skeleton.named_parameters():
            source = name
            if name.startswith("bert.encoder.layer."):
                index, rest = name[len("bert.encoder.layer.") :].split(".", 1)
                source = f"bert.encoder.layer.{layers[int(index)]}.{rest}"
            out[name] = shared[source][tuple(slice(0, n) for n in param.shape)]
        return out

    # --- running and extracting -------------------------------------------------------
    def forward(
        self,
        arch: Arch,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        *,
        want: Collection[str] = (),
    ) -> Outputs:
        """What the student ``arch`` computes, on the shared weights."""
        skeleton = self._skeleton(arch)
        skeleton.train(self.training)
        return torch.func.functional_call(
            skeleton,
            self.sliced(arch),
            (input_ids, attention_mask, token_type_ids),
            {"want": want},
            strict=True,
        )

    def run_layer(self, arch: Arch, index: int, x: Tensor, attention_mask: Tensor) -> Tensor:
        """Layer ``index`` (0-based) of student ``arch`` on hidden states ``x`` [batch, seq,
        arch.hidden], on the shared weights (block-wise training and scoring)."""
        skeleton = self._skeleton(arch)
        skeleton.train(self.training)
        prefix = f"bert.encoder.layer.{index}."
        params = {k[len(prefix) :]: v for k, v in self.sliced(arch).items() if k.startswith(prefix)}
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        layer = skeleton.bert.encoder.layer[index]
        return torch.func.functional_call(layer, params, (x, bias, None, None), strict=True)[0]

    def extract(self, arch: Arch) -> Classifier:
        """A plain student holding copies of ``arch``'s slices (eval mode)."""
        student = Classifier(self.student_config(arch))
        with torch.no_grad():
            student.load_state_dict({k: v.detach().clone() for k, v in self.sliced(arch).items()})
        student.eval()
        return student

    def _skeleton(self, arch: Arch) -> Classifier:
        """A weightless (meta-device) ``Classifier`` of ``arch``: the code, not the weights."""
        skeleton = self._skeletons.get(arch)
        if skeleton is None:
            self.check(arch)
            with torch.device("meta"):
                skeleton = Classifier(self.student_config(arch))
            self._skeletons[arch] = skeleton
            if len(self._skeletons) > _SKELETONS_KEPT:
                self._skeletons.popitem(last=False)
        else:
            self._skeletons.move_to_end(arch)
        return skeleton


# --- initialisation from the teacher (ETD) ----------------------------------------------
def ranking_order(teacher: Classifier, scores: Importance) -> dict[str, Tensor]:
    """The reordering ``rank_by_importance`` applies, as index tensors: ``hidden``, and per
    layer ``i`` the Q/K/V rows ``attention.i`` (heads by importance, each head's dimensions
    by ETD's weight norms) and the FFN neurons ``neurons.i``."""
    src = {k: v.detach() for k, v in teacher.state_dict().items()}
    order = {"hidden": _order(scores.hidden)}
    for i, shape in enumerate(teacher.arch.layers):
        pre = f"bert.encoder.layer.{i}"
        order[f"attention.{i}"] = _head_order(src, pre, shape.heads, shape.head_dim, scores.heads[i])
        order[f"neurons.{i}"] = _order(scores.neurons[i])
    return order


def rank_by_importance(teacher: Classifier, scores: Importance) -> Classifier:
    """A copy of ``teacher`` with its units reordered, most important first: hidden
    dimensions, each layer's heads (and each head's dimensions, by the weight norms ETD
    uses) and FFN neurons. The reordered teacher computes exactly what the teacher does."""
    return apply_order(teacher, ranking_order(teacher, scores))


def apply_order(teacher: Classifier, order: dict[str, Tensor]) -> Classifier:
    """``teacher`` with its units reordered by ``order`` (``ranking_order``'s form): the
    same function, its hidden states' dimensions permuted by ``order["hidden"]``."""
    src = {k: v.detach() for k, v in teacher.state_dict().items()}
    hid = order["hidden"]
    new = dict(src)
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        key = f"bert.embeddings.{name}.weight"
        new[key] = src[key][:, hid]
    _permute_norm(new, src, "bert.embeddings.LayerNorm", hid)
    for i in range(teacher.arch.num_layers):
        pre = f"bert.encoder.layer.{i}"
        att, neurons = order[f"attention.{i}"], order[f"neurons.{i}"]
        for proj in ("query", "key", "value"):
            weight = f"{pre}.attention.self.{proj}.weight"
            new[weight] = src[weight][att][:, hid]
            new[f"{pre}.attention.self.{proj}.bias"] = src[f"{pre}.attention.self.{proj}.bias"][att]
        new[f"{pre}.attention.output.dense.weight"] = src[f"{pre}.attention.output.dense.weight"][hid][:, att]
        new[f"{pre}.attention.output.dense.bias"] = src[f"{pre}.attention.output.dense.bias"][hid]
        _permute_norm(new, src, f"{pre}.attention.output.LayerNorm", hid)
        new[f"{pre}.intermediate.dense.weight"] = src[f"{pre}.intermediate.dense.weight"][neurons][:, hid]
        new[f"{pre}.intermediate.dense.bias"] = src[f"{pre}.intermediate.dense.bias"][neurons]
        new[f"{pre}.output.dense.weight"] = src[f"{pre}.output.dense.weight"][hid][:, neurons]
        new[f"{pre}.output.dense.bias"] = src[f"{pre}.output.dense.bias"][hid]
        _permute_norm(new, src, f"{pre}.output.LayerNorm", hid)
    new["bert.pooler.dense.weight"] = src["bert.pooler.dense.weight"][hid][:, hid]
    new["bert.pooler.dense.bias"] = src["bert.pooler.dense.bias"][hid]
    new["classifier.weight"] = src["classifier.weight"][:, hid]
    ranked = Classifier(teacher.config)
    ranked.load_state_dict({k: v.clone() for k, v in new.items()})
    ranked.train(teacher.training)
    return ranked


def reference_teacher(teacher: Classifier, net: Supernet) -> Classifier:
    """The teacher as the supernet's students see it: reordered as the supernet was when
    it was cut from it (``net.order``), so hidden states and attention heads line up with
    the students' slices; the teacher itself when the supernet started from random weights."""
    return teacher if net.order is None else apply_order(teacher, net.order)


def supernet_from_teacher(
    teacher: Classifier, max_arch: Arch, scores: Importance | None, layer_rule: str = "spread"
) -> Supernet:
    """A supernet of shape ``max_arch`` initialised from ``teacher`` (ETD): the teacher's
    units ranked by ``scores`` and cut to size, its layers chosen by the uniform map.
    ``scores`` ``None`` keeps the teacher's order. Raises ``ConfigError`` when the
    supernet is in any dimension larger than the teacher."""
    t = teacher.arch
    problems = initialisation_problems(t, max_arch)
    if problems:
        raise ConfigError(
            "the supernet cannot be initialised from this teacher: "
            + "; ".join(problems)
            + " (use init random, or a space no larger than the teacher)"
        )
    order = None if scores is None else ranking_order(teacher, scores)
    source = teacher if order is None else apply_order(teacher, order)
    max_arch = replace(
        max_arch,
        type_vocab_size=t.type_vocab_size,
        max_positions=min(max_arch.max_positions, t.max_positions),
    )
    net = Supernet(replace(teacher.config, arch=max_arch), layer_rule)
    # The supernet's layers come from the teacher's as a uniform layer map pairs them.
    teacher_layers = spread_layers(max_arch.num_layers, t.num_layers)
    with torch.no_grad():
        src = dict(source.named_parameters())
        for name, param in net.model.named_parameters():
            origin = name
            if name.startswith("bert.encoder.layer."):
                index, rest = name[len("bert.encoder.layer.") :].split(".", 1)
                origin = f"bert.encoder.layer.{teacher_layers[int(index)]}.{rest}"
            param.copy_(src[origin][tuple(slice(0, n) for n in param.shape)])
    net.order = order
    return net


def initialisation_problems(teacher: Arch, max_arch: Arch) -> list[str]:
    """Why a supernet of shape ``max_arch`` cannot be cut from ``teacher`` (none: it can)."""
    problems = []
    if max_arch.num_layers > teacher.num_layers:
        problems.append(f"{max_arch.num_layers} layers > the teacher's {teacher.num_layers}")
    if max_arch.hidden > teacher.hidden:
        problems.append(f"hidden {max_arch.hidden} > the teacher's {teacher.hidden}")
    width = min(s.attn_width for s in teacher.layers)
    if max_arch.layers[0].attn_width > width:
        problems.append(f"attention width {max_arch.layers[0].attn_width} > the teacher's {width}")
    if max(max_arch.ffn) > min(teacher.ffn):
        problems.append(f"FFN {max(max_arch.ffn)} > the teacher's {min(teacher.ffn)}")
    if max_arch.vocab_size != teacher.vocab_size:
        problems.append(f"vocabulary {max_arch.vocab_size} != the teacher's {teacher.vocab_size}")
    return problems


def _order(scores: np.ndarray) -> Tensor:
    return torch.as_tensor(np.argsort(-np.asarray(scores), kind="stable"), dtype=torch.int64)


def _permute_norm(new: dict[str, Tensor], src: dict[str, Tensor], key: str, order: Tensor) -> None:
    new[f"{key}.weight"] = src[f"{key}.weight"][order]
    new[f"{key}.bias"] = src[f"{key}.bias"][order]


def _head_order(
    src: dict[str, Tensor], prefix: str, heads: int, head_dim: int, head_scores: np.ndarray
) -> Tensor:
    """Q/K/V rows: heads by importance, and within a head its dimensions by ETD's weight
    norms (query·key and value·output), the same order for Q, K and V."""
    q = src[f"{prefix}.attention.self.query.weight"].norm(dim=1)
    k = src[f"{prefix}.attention.self.key.weight"].norm(dim=1)
    v = src[f"{prefix}.attention.self.value.weight"].norm(dim=1)
    o = src[f"{prefix}.attention.output.dense.weight"].norm(dim=0)
    dim_scores = (q * k + v * o).numpy()
    rows = []
    for h in _order(head_scores).tolist():
        base = h * head_dim
        rows.append(_order(dim_scores[base : base + head_dim]) + base)
    return torch.cat(rows)


# --- on disk ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SupernetInfo:
    """What ``supernet.json`` says beside the checkpoint of the shared weights."""

    layer_rule: str
    space: dict[str, Any]
    steps: int
    teacher: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer_rule": self.layer_rule,
            "space": self.space,
            "steps": self.steps,
            "teacher": self.teacher,
        }


def save_supernet(
    directory: str | Path, net: Supernet, encoder: Any, label_names: Sequence[str], info: SupernetInfo
) -> None:
    """The shared weights as an ordinary checkpoint (``latbench.distill.checkpoint``) plus
    ``supernet.json`` and the teacher's reordering (``teacher-order.safetensors``, when it
    was cut from the teacher); ``load_supernet`` reads them back."""
    from safetensors.torch import save_file

    from latbench.distill.checkpoint import save_checkpoint

    out = Path(directory)
    save_checkpoint(out, net.model, encoder, label_names)
    if net.order is not None:
        with atomic_output(out / ORDER_FILE) as tmp:
            save_file({k: v.contiguous() for k, v in net.order.items()}, tmp)
    else:
        (out / ORDER_FILE).unlink(missing_ok=True)
    with atomic_output(out / SUPERNET_FILE) as tmp:
        Path(tmp).write_text(json.dumps(info.to_dict(), indent=2) + "\n", encoding="utf-8")


@dataclass
class LoadedSupernet:
    net: Supernet
    encoder: Any
    label_names: tuple[str, ...]
    info: SupernetInfo
    path: Path


def load_supernet(directory: str | Path) -> LoadedSupernet:
    from latbench.distill.checkpoint import CheckpointError, load_checkpoint

    path = Path(directory)
    if not (path / SUPERNET_FILE).is_file():
        raise CheckpointError(
            f"{path} holds no {SUPERNET_FILE}: give a folder written by `latbench supernet train`"
        )
    try:
        data = json.loads((path / SUPERNET_FILE).read_text(encoding="utf-8"))
        info = SupernetInfo(
            layer_rule=str(data["layer_rule"]),
            space=dict(data["space"]),
            steps=int(data["steps"]),
            teacher=str(data.get("teacher", "")),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path / SUPERNET_FILE} is malformed: {exc}") from None
    checkpoint = load_checkpoint(path)
    net = Supernet(checkpoint.model.config, info.layer_rule)
    net.model.load_state_dict(checkpoint.model.state_dict())
    if (path / ORDER_FILE).is_file():
        from safetensors.torch import load_file

        net.order = load_file(str(path / ORDER_FILE))
    net.eval()
    return LoadedSupernet(net, checkpoint.encoder, checkpoint.label_names, info, path)
