"""What gets measured: operators (``OpSpec``), encoder layers (``BlockSpec``) and whole
encoders (``EncoderSpec``), each for one ``Workload``.

Specs are frozen and hashable; ``spec.key`` is a stable content hash used as the lookup
table key and as the database's identity for "already measured". An ``OpSpec`` keeps only
the dimensions its operator depends on (a QKV projection does not depend on the number
of heads), so equal operators in different layers share one key and are measured once.

Layers with a fixed head size (attention width ``heads * head_size`` != hidden) map onto
the same operators: the Q/K/V and output projections carry the attention width
(``attn_width``, 0 when it equals ``hidden``), and the attention operators, which never
see the hidden size, are keyed by their own width (``hidden`` = attention width), so a
score matrix of 8 heads of 64 is one operator whichever layer it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from latbench.arch import Arch, LayerShape, Workload
from latbench.errors import ConfigError, InvalidArchError
from latbench.keys import content_key

# The operators of one BERT encoder layer (plus the embedding), in execution order, and
# which of (hidden, heads, ffn) each depends on besides the workload. For the attention
# operators "hidden" is the attention width; the projections also depend on that width
# (``OpSpec.attn_width``) where it differs from the hidden size.
OP_DEPENDS: dict[str, frozenset[str]] = {
    "embedding": frozenset({"hidden"}),
    "qkv_proj": frozenset({"hidden"}),
    "attn_scores": frozenset({"hidden", "heads"}),
    "softmax": frozenset({"heads"}),
    "attn_context": frozenset({"hidden", "heads"}),
    "out_proj": frozenset({"hidden"}),
    "add_layernorm": frozenset({"hidden"}),
    "ffn_up_gelu": frozenset({"hidden", "ffn"}),
    "ffn_down": frozenset({"hidden", "ffn"}),
}
LAYER_OPS: tuple[tuple[str, int], ...] = (
    ("qkv_proj", 1),
    ("attn_scores", 1),
    ("softmax", 1),
    ("attn_context", 1),
    ("out_proj", 1),
    ("add_layernorm", 2),  # after attention and after the FFN
    ("ffn_up_gelu", 1),
    ("ffn_down", 1),
)
CONTEXTS = ("isolated", "model")
#: Operators that map between the hidden size and the attention width.
PROJECTION_OPS = frozenset({"qkv_proj", "out_proj"})
#: Operators inside attention, keyed by the attention width instead of the hidden size.
ATTENTION_OPS = frozenset({"attn_scores", "softmax", "attn_context"})


@dataclass(frozen=True)
class OpSpec:
    """One operator of an encoder layer. Dimensions it does not depend on are stored as 0.

    ``attn_width`` is the Q/K/V width of a projection operator when it differs from
    ``hidden`` (layers with a fixed head size), 0 otherwise.
    """

    kind: ClassVar[str] = "op"
    op: str
    workload: Workload
    hidden: int = 0
    heads: int = 0
    ffn: int = 0
    vocab_size: int = 0
    attn_width: int = 0

    def __post_init__(self) -> None:
        if self.op not in OP_DEPENDS:
            raise ConfigError(f"unknown operator {self.op!r}; known: {', '.join(OP_DEPENDS)}")
        deps = OP_DEPENDS[self.op]
        for dim in ("hidden", "heads", "ffn"):
            value = getattr(self, dim)
            if dim in deps and (not isinstance(value, int) or value <= 0):
                raise InvalidArchError(f"operator {self.op} needs a positive {dim}, got {value!r}")
            if dim not in deps:
                object.__setattr__(self, dim, 0)
        if self.op == "embedding":
            if self.vocab_size <= 0:
                object.__setattr__(self, "vocab_size", 30522)
        else:
            object.__setattr__(self, "vocab_size", 0)
        if self.op not in PROJECTION_OPS or self.attn_width == self.hidden:
            object.__setattr__(self, "attn_width", 0)
        elif isinstance(self.attn_width, bool) or not isinstance(self.attn_width, int) or self.attn_width < 0:
            raise InvalidArchError(f"attn_width must be a non-negative integer, got {self.attn_width!r}")
        if {"hidden", "heads"} <= deps and self.hidden % self.heads:
            raise InvalidArchError(f"hidden {self.hidden} is not divisible by {self.heads} heads")

    @classmethod
    def for_layer(cls, op: str, layer: LayerShape, workload: Workload, vocab_size: int = 0) -> OpSpec:
        if op in ATTENTION_OPS:
            return cls(op, workload, layer.attn_width, layer.heads, layer.ffn, vocab_size)
        return cls(op, workload, layer.hidden, layer.heads, layer.ffn, vocab_size, layer.attn_width)

    @property
    def width(self) -> int:
        """The attention width a projection maps to (``hidden`` unless ``attn_width``)."""
        return self.attn_width or self.hidden

    def to_dict(self) -> dict[str, Any]:
        data = {
            "kind": self.kind,
            "op": self.op,
            "hidden": self.hidden,
            "heads": self.heads,
            "ffn": self.ffn,
            "vocab_size": self.vocab_size,
            "workload": self.workload.to_dict(),
        }
        if self.attn_width:  # absent for BERT's geometry, so existing keys do not change
            data["attn_width"] = self.attn_width
        return data

    @property
    def key(self) -> str:
        return content_key(self.to_dict())

    @property
    def flops(self) -> int:
        """Floating-point operations: 2 per multiply-accumulate for matrix products, and a
        nominal count per element for element-wise work (softmax 5, add+LayerNorm 8, GELU
        in the FFN-up op 8, embedding 10), so every operator has a non-zero size."""
        return op_flops(self)

    @property
    def bytes_moved(self) -> int:
        """Bytes read and written once each (weights, inputs, outputs): a lower bound on
        memory traffic, for roofline estimates."""
        return op_bytes(self)

    @property
    def label(self) -> str:
        names = ("hidden", "heads", "ffn", "attn_width")
        dims = ",".join(f"{d}={getattr(self, d)}" for d in names if getattr(self, d))
        w = self.workload
        return f"op:{self.op}[{dims}] b={w.batch} s={w.seq_len}"


@dataclass(frozen=True)
class BlockSpec:
    """One encoder layer. ``context`` says how it is measured:

    ``isolated``: the same layer run again and again, its weights hot in cache;
    ``model``: a stack of distinct copies run as one model, latency divided by the copy
    count, so each copy's weights have been evicted by the others by the time it runs,
    as inside a real encoder (see ``latbench.models.torch_modules.LayerStack``).
    """

    kind: ClassVar[str] = "block"
    layer: LayerShape
    workload: Workload
    context: str = "model"

    def __post_init__(self) -> None:
        if self.context not in CONTEXTS:
            raise ConfigError(f"block context must be one of {', '.join(CONTEXTS)}, got {self.context!r}")

    def to_dict(self) -> dict[str, Any]:
        data = {
            "kind": self.kind,
            "hidden": self.layer.hidden,
            "heads": self.layer.heads,
            "ffn": self.layer.ffn,
            "context": self.context,
            "workload": self.workload.to_dict(),
        }
        if self.layer.head_size:  # absent for BERT's geometry, so existing keys do not change
            data["head_size"] = self.layer.head_size
        return data

    @property
    def key(self) -> str:
        return content_key(self.to_dict())

    @property
    def label(self) -> str:
        lay, w = self.layer, self.workload
        dims = f"{lay.hidden}/{lay.heads}/{lay.ffn}" + (f"/d{lay.head_size}" if lay.head_size else "")
        return f"block[{dims},{self.context}] b={w.batch} s={w.seq_len}"


@dataclass(frozen=True)
class EncoderSpec:
    """A whole encoder (embeddings + layers): the end-to-end ground truth for predictors."""

    kind: ClassVar[str] = "encoder"
    arch: Arch
    workload: Workload

    def __post_init__(self) -> None:
        self.arch.check_workload(self.workload)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "arch": self.arch.to_dict(), "workload": self.workload.to_dict()}

    @property
    def key(self) -> str:
        return content_key(self.to_dict())

    @property
    def label(self) -> str:
        a, w = self.arch, self.workload
        heads = a.heads[0] if len(set(a.heads)) == 1 else "var"
        ffn = a.ffn[0] if len(set(a.ffn)) == 1 else "var"
        d = f",D={a.head_size}" if a.head_size else ""
        return f"encoder[L={a.num_layers},H={a.hidden},A={heads},F={ffn}{d}] b={w.batch} s={w.seq_len}"


@dataclass(frozen=True)
class ModelSpec:
    """A user's own model: an ONNX graph (``source="onnx"``), a Hugging Face checkpoint
    exported by latbench (``"hf"``) or run as eager PyTorch (``"hf-eager"``), identified by
    ``digest`` (of the ONNX graph or the checkpoint's config and weights). ``arch`` is its
    shape when latbench can read one (a Hugging Face config), so predictors can be scored
    on it; None for an arbitrary ONNX graph."""

    kind: ClassVar[str] = "model"
    name: str
    digest: str
    workload: Workload
    source: str = "onnx"
    arch: Arch | None = None

    def __post_init__(self) -> None:
        if self.source not in MODEL_SOURCES:
            raise ConfigError(f"model source must be one of {', '.join(MODEL_SOURCES)}, got {self.source!r}")
        if not self.name or not self.digest:
            raise ConfigError("a model spec needs a name and a digest")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "digest": self.digest,
            "source": self.source,
            "arch": self.arch.to_dict() if self.arch is not None else None,
            "workload": self.workload.to_dict(),
        }

    @property
    def key(self) -> str:
        return content_key(self.to_dict())

    @property
    def label(self) -> str:
        w = self.workload
        return f"model[{self.name},{self.source}] b={w.batch} s={w.seq_len}"


MODEL_SOURCES = ("onnx", "hf", "hf-eager")

Spec = OpSpec | BlockSpec | EncoderSpec | ModelSpec


def spec_from_dict(data: Mapping[str, Any]) -> Spec:
    kind = data.get("kind")
    workload = Workload.from_dict(data["workload"])
    if kind == "op":
        return OpSpec(
            data["op"],
            workload,
            data["hidden"],
            data["heads"],
            data["ffn"],
            data["vocab_size"],
            data.get("attn_width", 0),
        )
    if kind == "block":
        layer = LayerShape(data["hidden"], data["heads"], data["ffn"], data.get("head_size", 0))
        return BlockSpec(layer, workload, data["context"])
    if kind == "encoder":
        return EncoderSpec(Arch.from_dict(data["arch"]), workload)
    if kind == "model":
        arch = Arch.from_dict(data["arch"]) if data.get("arch") else None
        return ModelSpec(data["name"], data["digest"], workload, data.get("source", "onnx"), arch)
    raise ConfigError(f"unknown spec kind {kind!r}")


def layer_ops(layer: LayerShape, workload: Workload) -> list[tuple[OpSpec, int]]:
    """The operators of one encoder layer with how often each runs per layer."""
    return [(OpSpec.for_layer(op, layer, workload), count) for op, count in LAYER_OPS]


def encoder_ops(arch: Arch, workload: Workload) -> list[tuple[OpSpec, int]]:
    """Every operator of an encoder with its count (equal ops across layers merged)."""
    counts: dict[OpSpec, int] = {OpSpec("embedding", workload, arch.hidden, vocab_size=arch.vocab_size): 1}
    for layer in arch.layers:
        for spec, n in layer_ops(layer, workload):
            counts[spec] = counts.get(spec, 0) + n
    return list(counts.items())


def with_workload(spec: Spec, workload: Workload) -> Spec:
    return replace(spec, workload=workload)


def _op_shape(spec: OpSpec) -> tuple[int, int, int, int, int, int, int]:
    w = spec.workload
    return w.batch, w.seq_len, spec.hidden, spec.heads, spec.ffn, spec.width, w.bytes_per_element


def op_flops(spec: OpSpec) -> int:
    b, s, h, a, f, w, _ = _op_shape(spec)
    return int(flops_formula(spec.op, b, s, h, a, f, w))


def op_bytes(spec: OpSpec) -> int:
    b, s, h, a, f, w, e = _op_shape(spec)
    return int(elements_formula(spec.op, b, s, h, a, f, w)) * e


# The formulas take plain ints or numpy arrays alike (predictors evaluate them for whole
# populations of architectures at once); ``op_flops``/``op_bytes`` are their scalar use.
# ``w`` is the attention width (``heads * head_dim``); ``None`` means BERT's, ``w = h``.
def flops_formula(op: str, b: Any, s: Any, h: Any, a: Any, f: Any, w: Any = None) -> Any:
    """FLOPs of operator ``op`` at batch ``b``, sequence ``s``, hidden ``h``, heads ``a``,
    FFN ``f`` and attention width ``w``."""
    tokens = b * s
    w = h if w is None else w
    if op == "embedding":
        return 10 * tokens * h
    if op == "qkv_proj":
        return 2 * tokens * h * 3 * w
    if op in ("attn_scores", "attn_context"):
        return 2 * b * s * s * w
    if op == "softmax":
        return 5 * b * a * s * s
    if op == "out_proj":
        return 2 * tokens * w * h
    if op == "add_layernorm":
        return 8 * tokens * h
    if op == "ffn_up_gelu":
        return 2 * tokens * h * f + 8 * tokens * f
    if op == "ffn_down":
        return 2 * tokens * f * h
    raise ConfigError(f"unknown operator {op!r}")


def elements_formula(op: str, b: Any, s: Any, h: Any, a: Any, f: Any, w: Any = None) -> Any:
    """Elements read and written once each by ``op`` (multiply by bytes per element)."""
    tokens = b * s
    w = h if w is None else w
    if op == "embedding":
        return tokens * h + 2 * tokens * h + 2 * h  # gathered rows, output, LayerNorm
    if op == "qkv_proj":
        return (h * 3 * w + 3 * w) + tokens * h + tokens * 3 * w
    if op == "attn_scores":
        return 2 * tokens * w + b * a * s * s
    if op == "softmax":
        return 2 * b * a * s * s
    if op == "attn_context":
        return b * a * s * s + 2 * tokens * w
    if op == "out_proj":
        return (w * h + h) + tokens * w + tokens * h
    if op == "add_layernorm":
        return 3 * tokens * h + 2 * h
    if op == "ffn_up_gelu":
        return (h * f + f) + tokens * h + tokens * f
    if op == "ffn_down":
        return (f * h + h) + tokens * f + tokens * h
    raise ConfigError(f"unknown operator {op!r}")


def block_flops(spec: BlockSpec) -> int:
    return sum(op.flops * n for op, n in layer_ops(spec.layer, spec.workload))


def block_bytes(spec: BlockSpec) -> int:
    return sum(op.bytes_moved * n for op, n in layer_ops(spec.layer, spec.workload))
