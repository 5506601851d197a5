"""A population of encoders as arrays, so predictors answer for thousands at once.

A search scores whole populations of candidate students; building and walking one
Python object per layer per candidate would cap a predictor at a few thousand
architectures per second. ``EncoderBatch`` holds ``n`` encoders as arrays instead:
``hidden``, ``batch``, ``seq_len`` and ``vocab_size`` of shape ``(n,)`` and per-layer
``heads`` and ``ffn`` of shape ``(n, max_layers)``, zero-padded past each encoder's last
layer, and ``head_size`` of shape ``(n,)`` (0 for BERT's ``hidden // heads``). Predictors
evaluate a layer shape once however many encoders share it (``unique_layers``) and
compute FLOPs and bytes with the same formulas as ``latbench.specs``, on arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from latbench.arch import BYTES_PER_ELEMENT, Arch, Workload
from latbench.specs import LAYER_OPS, EncoderSpec, elements_formula, flops_formula


@dataclass(frozen=True, eq=False)
class EncoderBatch:
    hidden: np.ndarray
    heads: np.ndarray
    ffn: np.ndarray
    batch: np.ndarray
    seq_len: np.ndarray
    vocab_size: np.ndarray
    precision: str = "fp32"
    head_size: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.head_size is None:
            object.__setattr__(self, "head_size", np.zeros(len(self.hidden), dtype=np.int64))
        for name in ("hidden", "heads", "ffn", "batch", "seq_len", "vocab_size", "head_size"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        n = len(self.hidden)
        if self.head_size.shape != (n,) or (n and self.head_size.min() < 0):
            raise ValueError(f"EncoderBatch.head_size must have shape ({n},) and be >= 0")
        for name in ("hidden", "batch", "seq_len", "vocab_size"):
            value = getattr(self, name)
            if value.shape != (n,):
                raise ValueError(f"EncoderBatch.{name} must have shape ({n},), got {value.shape}")
            if n and value.min() <= 0:
                raise ValueError(f"EncoderBatch.{name} must be positive")
        if self.heads.ndim != 2 or self.heads.shape[0] != n or self.ffn.shape != self.heads.shape:
            raise ValueError(
                f"EncoderBatch.heads and .ffn must both have shape ({n}, max_layers), "
                f"got {self.heads.shape} and {self.ffn.shape}"
            )
        if self.precision not in BYTES_PER_ELEMENT:
            raise ValueError(f"unknown precision {self.precision!r}")
        mask = self.heads > 0
        if np.any(mask != (self.ffn > 0)) or np.any(self.heads < 0) or np.any(self.ffn < 0):
            raise ValueError("a layer needs both heads and FFN size > 0 (zero marks padding)")
        if np.any(mask[:, 1:] & ~mask[:, :-1]):
            raise ValueError("padding must come after an encoder's last layer")
        if n and not mask[:, 0].all():
            raise ValueError("every encoder needs at least one layer")
        bert_geometry = mask & (self.head_size[:, None] == 0)
        if np.any(bert_geometry & (self.hidden[:, None] % np.where(mask, self.heads, 1) != 0)):
            raise ValueError("every layer's head count must divide the hidden size (or set a head_size)")

    # --- construction ---------------------------------------------------------------
    @classmethod
    def from_specs(cls, specs: Sequence[EncoderSpec]) -> EncoderBatch:
        precisions = {s.workload.precision for s in specs}
        if len(precisions) > 1:
            raise ValueError(f"an EncoderBatch holds one precision, got {sorted(precisions)}")
        return cls._build(
            [s.arch for s in specs],
            [s.workload.batch for s in specs],
            [s.workload.seq_len for s in specs],
            precisions.pop() if precisions else "fp32",
        )

    @classmethod
    def from_archs(cls, archs: Sequence[Arch], workload: Workload) -> EncoderBatch:
        """Every architecture at one workload (what a search asks about)."""
        for arch in archs:
            arch.check_workload(workload)
        n = len(archs)
        return cls._build(archs, [workload.batch] * n, [workload.seq_len] * n, workload.precision)

    @classmethod
    def _build(
        cls, archs: Sequence[Arch], batch: Sequence[int], seq: Sequence[int], precision: str
    ) -> EncoderBatch:
        n = len(archs)
        depth = max((a.num_layers for a in archs), default=1)
        heads = np.zeros((n, depth), dtype=np.int64)
        ffn = np.zeros((n, depth), dtype=np.int64)
        for i, arch in enumerate(archs):
            heads[i, : arch.num_layers] = arch.heads
            ffn[i, : arch.num_layers] = arch.ffn
        return cls(
            np.fromiter((a.hidden for a in archs), np.int64, n),
            heads,
            ffn,
            np.asarray(batch, dtype=np.int64),
            np.asarray(seq, dtype=np.int64),
            np.fromiter((a.vocab_size for a in archs), np.int64, n),
            precision,
            np.fromiter((a.head_size for a in archs), np.int64, n),
        )

    # --- views ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.hidden)

    @cached_property
    def mask(self) -> np.ndarray:
        """``(n, max_layers)``: True where a layer exists."""
        return self.heads > 0

    @cached_property
    def num_layers(self) -> np.ndarray:
        return self.mask.sum(axis=1)

    @property
    def bytes_per_element(self) -> int:
        return BYTES_PER_ELEMENT[self.precision]

    def _layer_dims(self) -> tuple[np.ndarray, ...]:
        """``b, s, h, a, f, w`` broadcast to ``(n, max_layers)`` (``w``: attention width)."""
        shape = self.heads.shape
        return (
            np.broadcast_to(self.batch[:, None], shape),
            np.broadcast_to(self.seq_len[:, None], shape),
            np.broadcast_to(self.hidden[:, None], shape),
            self.heads,
            self.ffn,
            self.attn_width,
        )

    @cached_property
    def attn_width(self) -> np.ndarray:
        """``(n, max_layers)``: each layer's attention width (``hidden`` for BERT's geometry)."""
        d = self.head_size[:, None]
        return np.where(d > 0, self.heads * d, self.hidden[:, None])

    def op_flops(self, op: str) -> np.ndarray:
        """``(n, max_layers)`` FLOPs of one run of ``op`` in each layer (0 for padding)."""
        return np.where(self.mask, flops_formula(op, *self._layer_dims()), 0).astype(float)

    def op_bytes(self, op: str) -> np.ndarray:
        elements = np.where(self.mask, elements_formula(op, *self._layer_dims()), 0).astype(float)
        return elements * self.bytes_per_element

    def embedding_flops(self) -> np.ndarray:
        return flops_formula("embedding", self.batch, self.seq_len, self.hidden, 0, 0).astype(float)

    def embedding_bytes(self) -> np.ndarray:
        elements = elements_formula("embedding", self.batch, self.seq_len, self.hidden, 0, 0)
        return elements.astype(float) * self.bytes_per_element

    @cached_property
    def layer_flops(self) -> np.ndarray:
        """``(n, max_layers)``: every operator of each layer, as ``latbench.specs.block_flops``."""
        return sum(count * self.op_flops(op) for op, count in LAYER_OPS)  # type: ignore[return-value]

    @cached_property
    def layer_bytes(self) -> np.ndarray:
        return sum(count * self.op_bytes(op) for op, count in LAYER_OPS)  # type: ignore[return-value]

    def matmul_flops(self) -> np.ndarray:
        """``(n,)``: FLOPs of the matrix products, as ``latbench.arch.Arch.flops``."""
        tokens = (self.batch * self.seq_len)[:, None]
        h, w = self.hidden[:, None], self.attn_width
        per_layer = (
            tokens * (4 * h * w + 2 * h * self.ffn) + 2 * self.batch[:, None] * self.seq_len[:, None] ** 2 * w
        )
        return 2.0 * np.where(self.mask, per_layer, 0).sum(axis=1)

    def unique_layers(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct ``(hidden, heads, ffn, batch, seq_len, head_size)`` rows among all layers
        (head size 0: BERT's), and for each layer slot the index of its row (-1 for padding),
        shape ``(n, max_layers)``."""
        b, s, h, a, f, _ = self._layer_dims()
        d = np.broadcast_to(self.head_size[:, None], self.heads.shape)
        # a head size equal to hidden / heads is BERT's geometry: one row, as LayerShape does
        d = np.where(d * a == h, 0, d)
        m = self.mask
        rows = np.stack([h[m], a[m], f[m], b[m], s[m], d[m]], axis=1)
        unique, inverse = _unique_rows(rows)
        index = np.full(self.heads.shape, -1, dtype=np.int64)
        index[self.mask] = inverse
        return unique, index

    def unique_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct ``(hidden, batch, seq_len, vocab_size)`` rows and each encoder's index."""
        rows = np.stack([self.hidden, self.batch, self.seq_len, self.vocab_size], axis=1)
        return _unique_rows(rows)


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(rows, axis=0, return_inverse=True)``, through one int64 key per row
    when the values allow (several times faster on millions of rows)."""
    if len(rows) == 0:
        return rows.reshape(0, rows.shape[1]), np.empty(0, dtype=np.int64)
    radix = rows.max(axis=0) + 1
    if float(np.prod(radix.astype(float))) < 2.0**62:
        key = np.zeros(len(rows), dtype=np.int64)
        for column, r in zip(rows.T, radix, strict=True):
            key = key * r + column
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return rows[first], inverse.reshape(-1)
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1)
