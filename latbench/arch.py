"""Architectures (``Arch``), per-layer shapes (``LayerShape``) and workloads (``Workload``).

All three are small frozen value types: hashable, validated on construction, and
convertible to and from plain JSON-able dicts. ``Arch`` also converts from and to
Hugging Face BERT-family configs (BERT, RoBERTa, ELECTRA, DistilBERT) and counts its
parameters and multiply-accumulates for a workload.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latbench.errors import ConfigError, InvalidArchError
from latbench.files import check_fields

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArchError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise InvalidArchError(f"{name} must be a positive integer, got {value}")
    return value


@dataclass(frozen=True, order=True)
class LayerShape:
    """One encoder layer: hidden size, attention heads, FFN (intermediate) size and head size.

    ``head_size`` 0 (the default) means BERT's geometry, ``hidden // heads``, which needs
    ``heads`` to divide ``hidden``. A positive ``head_size`` fixes each head's width
    instead (AutoDistil fixes it at 64), so attention is ``heads * head_size`` wide and
    the Q/K/V and output projections map between that width and ``hidden``. A head size
    equal to ``hidden / heads`` is stored as 0, so one layer has one identity.
    """

    hidden: int
    heads: int
    ffn: int
    head_size: int = 0

    def __post_init__(self) -> None:
        _check_positive_int("hidden", self.hidden)
        _check_positive_int("heads", self.heads)
        _check_positive_int("ffn", self.ffn)
        if self.head_size:
            _check_positive_int("head_size", self.head_size)
            if self.head_size * self.heads == self.hidden:
                object.__setattr__(self, "head_size", 0)
        elif isinstance(self.head_size, bool) or not isinstance(self.head_size, int):
            raise InvalidArchError(f"head_size must be a non-negative integer, got {self.head_size!r}")
        if not self.head_size and self.hidden % self.heads:
            raise InvalidArchError(
                f"hidden size {self.hidden} is not divisible by {self.heads} heads; "
                f"choose heads among the divisors of {self.hidden}, or set a head_size"
            )

    @property
    def head_dim(self) -> int:
        return self.head_size or self.hidden // self.heads

    @property
    def attn_width(self) -> int:
        """Width of the attention (Q, K, V and context): ``heads * head_dim``."""
        return self.heads * self.head_dim

    @property
    def params(self) -> int:
        h, f, w = self.hidden, self.ffn, self.attn_width
        # QKV (3hw+3w) + out proj (wh+h) + 2 LayerNorms (4h) + FFN (2hf + f + h)
        return 4 * h * w + 3 * w + 2 * h * f + 6 * h + f

    def macs(self, workload: Workload) -> int:
        """Multiply-accumulates of the layer's matrix products for ``workload``."""
        tokens = workload.batch * workload.seq_len
        h, f, w, s = self.hidden, self.ffn, self.attn_width, workload.seq_len
        projections = tokens * (4 * h * w + 2 * h * f)
        attention = 2 * workload.batch * s * s * w  # scores QK^T and context PV
        return projections + attention


@dataclass(frozen=True)
class Workload:
    """What one inference processes: batch size, sequence length and numeric precision."""

    batch: int
    seq_len: int
    precision: str = "fp32"

    def __post_init__(self) -> None:
        _check_positive_int("batch", self.batch)
        _check_positive_int("seq_len", self.seq_len)
        if self.precision not in PRECISIONS:
            raise InvalidArchError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )

    @property
    def bytes_per_element(self) -> int:
        return BYTES_PER_ELEMENT[self.precision]

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "seq_len": self.seq_len, "precision": self.precision}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workload:
        return cls(int(data["batch"]), int(data["seq_len"]), str(data.get("precision", "fp32")))


@dataclass(frozen=True)
class Arch:
    """A BERT-style encoder: embeddings plus ``num_layers`` (possibly different) layers.

    ``heads`` and ``ffn`` are per-layer tuples of equal length; the hidden size is shared
    by every layer (the residual stream). ``head_size`` 0 means BERT's ``hidden // heads``;
    a positive value fixes every head's width (see :class:`LayerShape`). Use
    :meth:`uniform` for the common case.
    """

    hidden: int
    heads: tuple[int, ...]
    ffn: tuple[int, ...]
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    head_size: int = 0

    def __post_init__(self) -> None:
        for name in ("heads", "ffn"):
            if isinstance(getattr(self, name), (int, str, bytes)):
                raise InvalidArchError(f"{name} must be a per-layer list; use Arch.uniform for equal layers")
        heads, ffn = tuple(self.heads), tuple(self.ffn)
        object.__setattr__(self, "heads", heads)
        object.__setattr__(self, "ffn", ffn)
        _check_positive_int("hidden", self.hidden)
        if not heads:
            raise InvalidArchError("an architecture needs at least one layer (heads is empty)")
        if len(heads) != len(ffn):
            raise InvalidArchError(
                f"heads has {len(heads)} entries but ffn has {len(ffn)}; give one per layer"
            )
        if isinstance(self.head_size, bool) or not isinstance(self.head_size, int) or self.head_size < 0:
            raise InvalidArchError(f"head_size must be a non-negative integer, got {self.head_size!r}")
        shapes = []
        for i, (a, f) in enumerate(zip(heads, ffn, strict=True)):
            try:
                shapes.append(LayerShape(self.hidden, a, f, self.head_size))
            except InvalidArchError as exc:
                raise InvalidArchError(f"layer {i}: {exc}") from None
        if all(shape.head_size == 0 for shape in shapes):
            object.__setattr__(self, "head_size", 0)  # every layer has BERT's geometry anyway
        _check_positive_int("vocab_size", self.vocab_size)
        _check_positive_int("max_positions", self.max_positions)
        if isinstance(self.type_vocab_size, bool) or not isinstance(self.type_vocab_size, int):
            raise InvalidArchError(f"type_vocab_size must be an integer >= 0, got {self.type_vocab_size!r}")
        if self.type_vocab_size < 0:
            raise InvalidArchError(f"type_vocab_size must be >= 0, got {self.type_vocab_size}")

    @classmethod
    def uniform(cls, layers: int, hidden: int, heads: int, ffn: int, **kwargs: Any) -> Arch:
        _check_positive_int("layers", layers)
        return cls(hidden=hidden, heads=(heads,) * layers, ffn=(ffn,) * layers, **kwargs)

    @property
    def num_layers(self) -> int:
        return len(self.heads)

    @property
    def layers(self) -> tuple[LayerShape, ...]:
        return tuple(
            LayerShape(self.hidden, a, f, self.head_size) for a, f in zip(self.heads, self.ffn, strict=True)
        )

    @property
    def is_uniform(self) -> bool:
        return len(set(self.heads)) == 1 and len(set(self.ffn)) == 1

    @property
    def short_label(self) -> str:
        """``4L/128H/4A/512F`` (layers, hidden, heads, FFN); per-layer lists when layers
        differ, and ``/d64`` for a fixed head size."""

        def dim(values: tuple[int, ...]) -> str:
            return str(values[0]) if len(set(values)) == 1 else "[" + ",".join(map(str, values)) + "]"

        size = f"/d{self.head_size}" if self.head_size else ""
        return f"{self.num_layers}L/{self.hidden}H/{dim(self.heads)}A/{dim(self.ffn)}F{size}"

    @property
    def embedding_params(self) -> int:
        h = self.hidden
        return (self.vocab_size + self.max_positions + self.type_vocab_size) * h + 2 * h

    @property
    def params(self) -> int:
        """Parameters of embeddings and encoder layers (no pooler, no task head)."""
        return self.embedding_params + sum(layer.params for layer in self.layers)

    def macs(self, workload: Workload) -> int:
        """Multiply-accumulates of all matrix products for one inference of ``workload``."""
        self.check_workload(workload)
        return sum(layer.macs(workload) for layer in self.layers)

    def flops(self, workload: Workload) -> int:
        """Floating-point operations of the matrix products (2 per multiply-accumulate)."""
        return 2 * self.macs(workload)

    def check_workload(self, workload: Workload) -> None:
        if workload.seq_len > self.max_positions:
            raise InvalidArchError(
                f"sequence length {workload.seq_len} exceeds the architecture's "
                f"max_positions {self.max_positions}; use a shorter --seq"
            )

    # --- plain dicts / JSON -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "hidden": self.hidden,
            "heads": list(self.heads),
            "ffn": list(self.ffn),
            "vocab_size": self.vocab_size,
            "max_positions": self.max_positions,
            "type_vocab_size": self.type_vocab_size,
        }
        if self.head_size:  # absent for BERT's geometry, so existing keys do not change
            data["head_size"] = self.head_size
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arch:
        """Build from ``{"hidden", "heads", "ffn", ...}``.

        ``heads``/``ffn`` are per-layer lists, or single integers together with ``layers``.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"an architecture must be a JSON object, got {type(data).__name__}")
        optional = ("vocab_size", "max_positions", "type_vocab_size", "head_size")
        known = {"layers", "hidden", "heads", "ffn", *optional}
        check_fields(data, "architecture", known=known, required=("hidden", "heads", "ffn"))
        heads, ffn = data["heads"], data["ffn"]
        extras = {k: data[k] for k in optional if k in data}
        if isinstance(heads, list) or isinstance(ffn, list):
            n = len(heads) if isinstance(heads, list) else len(ffn)
            heads = heads if isinstance(heads, list) else [heads] * n
            ffn = ffn if isinstance(ffn, list) else [ffn] * n
            if "layers" in data and data["layers"] != n:
                raise InvalidArchError(f"layers={data['layers']} but {n} per-layer sizes were given")
            return cls(hidden=data["hidden"], heads=tuple(heads), ffn=tuple(ffn), **extras)
        if "layers" not in data:
            raise ConfigError("give 'layers' when heads and ffn are single numbers")
        return cls.uniform(data["layers"], data["hidden"], heads, ffn, **extras)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> Arch:
        """Parse an inline JSON object, or read one from a file path."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            path = Path(text)
            if not path.is_file():
                raise ConfigError(f"--arch {text!r} is neither a JSON object nor an existing file")
            text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"architecture JSON is malformed: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        return cls.from_dict(data)

    # --- Hugging Face configs ------------------------------------------------------------
    @classmethod
    def from_hf_config(cls, config: Any) -> Arch:
        """From a Hugging Face config object, its ``to_dict()``, or a config.json path.

        Understands BERT-style keys (BERT, RoBERTa, ELECTRA, MiniLM, TinyBERT) and
        DistilBERT's keys (``dim``, ``n_layers``, ``n_heads``, ``hidden_dim``).
        """
        if isinstance(config, (str, Path)):
            path = Path(config)
            if path.is_dir():
                path = path / "config.json"
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ConfigError(f"Hugging Face config {path} does not exist") from None
            except json.JSONDecodeError as exc:
                raise ConfigError(f"Hugging Face config {path} is not valid JSON: {exc.msg}") from None
        elif isinstance(config, Mapping):
            data = dict(config)
        elif hasattr(config, "to_dict"):
            data = config.to_dict()
        else:
            raise ConfigError(f"cannot read an architecture from a {type(config).__name__}")
        if not isinstance(data, Mapping):
            raise ConfigError("a Hugging Face config must be a JSON object")
        try:
            if data.get("model_type") == "distilbert" or "n_layers" in data:
                layers, hidden = data["n_layers"], data["dim"]
                heads, ffn = data["n_heads"], data["hidden_dim"]
                type_vocab = 0
            else:
                layers, hidden = data["num_hidden_layers"], data["hidden_size"]
                heads, ffn = data["num_attention_heads"], data["intermediate_size"]
                type_vocab = data.get("type_vocab_size", 2)
        except KeyError as exc:
            raise ConfigError(
                f"Hugging Face config lacks {exc.args[0]!r}; only BERT-family encoder configs "
                "(BERT, RoBERTa, ELECTRA, DistilBERT) are understood"
            ) from None
        embedding_size = data.get("embedding_size", hidden)
        if embedding_size != hidden:
            raise ConfigError(
                f"Hugging Face config has embedding_size {embedding_size} but hidden_size "
                f"{hidden}; factorized embeddings (ELECTRA-small, ALBERT) are not supported"
            )
        return cls.uniform(
            layers,
            hidden,
            heads,
            ffn,
            vocab_size=data.get("vocab_size", 30522),
            max_positions=data.get("max_position_embeddings", 512),
            type_vocab_size=type_vocab,
        )

    def to_hf_dict(self, model_type: str = "bert") -> dict[str, Any]:
        """A Hugging Face config dict for ``model_type`` ``bert`` or ``distilbert``.

        Hugging Face BERT-family configs cannot express per-layer sizes, so a
        heterogeneous architecture raises :class:`InvalidArchError`.
        """
        if not self.is_uniform:
            raise InvalidArchError(
                "this architecture has per-layer heads/FFN sizes, which Hugging Face "
                "BERT-family configs cannot express; save it with Arch.to_dict() instead"
            )
        if self.head_size:
            raise InvalidArchError(
                f"this architecture fixes the head size at {self.head_size} (attention width "
                f"{self.layers[0].attn_width} != hidden {self.hidden}), which Hugging Face "
                "BERT-family configs cannot express; save it with Arch.to_dict() instead"
            )
        if model_type == "bert":
            return {
                "model_type": "bert",
                "hidden_size": self.hidden,
                "num_hidden_layers": self.num_layers,
                "num_attention_heads": self.heads[0],
                "intermediate_size": self.ffn[0],
                "vocab_size": self.vocab_size,
                "max_position_embeddings": self.max_positions,
                "type_vocab_size": self.type_vocab_size,
                "hidden_act": "gelu",
            }
        if model_type == "distilbert":
            if self.type_vocab_size:
                raise InvalidArchError(
                    "DistilBERT has no token-type embeddings; use type_vocab_size=0 to convert"
                )
            return {
                "model_type": "distilbert",
                "dim": self.hidden,
                "n_layers": self.num_layers,
                "n_heads": self.heads[0],
                "hidden_dim": self.ffn[0],
                "vocab_size": self.vocab_size,
                "max_position_embeddings": self.max_positions,
                "activation": "gelu",
            }
        raise ConfigError(f"unknown model_type {model_type!r}; use 'bert' or 'distilbert'")

    def to_hf_config(self, model_type: str = "bert") -> Any:
        """A ``transformers`` config object (needs the ``hf`` extra)."""
        try:
            import transformers
        except ImportError:
            raise ConfigError(
                "converting to a Hugging Face config needs `pip install latbench[hf]`"
            ) from None
        data = self.to_hf_dict(model_type)
        data.pop("model_type")
        cls = transformers.BertConfig if model_type == "bert" else transformers.DistilBertConfig
        return cls(**data)


def iter_layer_shapes(archs: Iterable[Arch]) -> list[LayerShape]:
    """Distinct layer shapes used by ``archs``, sorted."""
    return sorted({layer for arch in archs for layer in arch.layers})
