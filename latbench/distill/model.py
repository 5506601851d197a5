"""Sequence classifiers for distillation: one BERT module for teachers and students.

``Classifier`` is a post-LayerNorm BERT encoder with a pooler and a classification head,
built from an ``Arch`` (so a student may have per-layer head counts and FFN sizes). Its
parameter names are exactly those of Hugging Face's ``BertForSequenceClassification``
(``bert.encoder.layer.0.attention.self.query.weight`` …), so a BERT checkpoint loads with
a strict key check and a uniform student saves back in Hugging Face layout unchanged.

Besides logits, a forward pass can return what the distillation losses need, and only
when asked (``want``): every layer's hidden states (TinyBERT's hidden-state loss), raw
attention scores before the padding mask and softmax (TinyBERT's attention loss), and
each layer's concatenated queries, keys and values (MiniLMv2's self-attention relations).

Optional ``masks`` multiply attention heads, FFN neurons and the embedding output's
hidden dimensions; gradients with respect to them are the importance scores that choose
what a student extracted from a teacher keeps (``latbench.distill.extract``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from latbench.arch import Arch, LayerShape
from latbench.errors import ConfigError

HIDDEN_STATES, SCORES, QKV = "hidden_states", "scores", "qkv"
POOLER_ACTIVATIONS = {"tanh": torch.tanh, "gelu": nn.functional.gelu, "relu": torch.relu}


@dataclass(frozen=True)
class ClassifierConfig:
    """What a ``Classifier`` is: an architecture, a label count and BERT's constants.

    ``pooler_activation`` is the activation between the head's two dense layers: ``tanh``
    (BERT's pooler, RoBERTa's head), ``gelu`` (ELECTRA's head) or ``relu`` (DistilBERT's
    pre-classifier): the same two layers everywhere. ``position_offset`` is where token
    positions start in the position table: 0 for BERT, ``pad_token_id + 1`` for RoBERTa,
    whose table keeps its first rows for padding.
    """

    arch: Arch
    num_labels: int
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    pad_token_id: int = 0
    pooler_activation: str = "tanh"
    position_offset: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.num_labels, bool) or not isinstance(self.num_labels, int) or self.num_labels < 2:
            raise ConfigError(f"a classifier needs at least 2 labels, got {self.num_labels!r}")
        if self.pooler_activation not in POOLER_ACTIVATIONS:
            raise ConfigError(
                f"pooler_activation must be one of {', '.join(POOLER_ACTIVATIONS)}, "
                f"got {self.pooler_activation!r}"
            )
        offset = self.position_offset
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ConfigError(f"position_offset must be an integer >= 0, got {offset!r}")
        if offset >= self.arch.max_positions:
            raise ConfigError(
                f"position_offset {offset} leaves none of the {self.arch.max_positions} positions"
            )
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch.to_dict(),
            "num_labels": self.num_labels,
            "layer_norm_eps": self.layer_norm_eps,
            "hidden_dropout": self.hidden_dropout,
            "attention_dropout": self.attention_dropout,
            "pad_token_id": self.pad_token_id,
            "pooler_activation": self.pooler_activation,
            "position_offset": self.position_offset,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassifierConfig:
        return cls(
            arch=Arch.from_dict(data["arch"]),
            num_labels=int(data["num_labels"]),
            layer_norm_eps=float(data.get("layer_norm_eps", 1e-12)),
            hidden_dropout=float(data.get("hidden_dropout", 0.1)),
            attention_dropout=float(data.get("attention_dropout", 0.1)),
            pad_token_id=int(data.get("pad_token_id", 0)),
            pooler_activation=str(data.get("pooler_activation", "tanh")),
            position_offset=int(data.get("position_offset", 0)),
        )

    @property
    def max_tokens(self) -> int:
        """The longest input (special tokens included) the position table holds."""
        return self.arch.max_positions - self.position_offset


@dataclass
class Masks:
    """Multipliers for importance scoring: per-layer heads and FFN neurons, and the
    hidden dimensions of the embedding output. ``Masks.ones(arch)`` changes nothing."""

    heads: list[Tensor]
    neurons: list[Tensor]
    hidden: Tensor

    @classmethod
    def ones(cls, arch: Arch, *, requires_grad: bool = True) -> Masks:
        def one(n: int) -> Tensor:
            return torch.ones(n, requires_grad=requires_grad)

        return cls([one(a) for a in arch.heads], [one(f) for f in arch.ffn], one(arch.hidden))


@dataclass
class Outputs:
    logits: Tensor
    hidden_states: list[Tensor] = field(default_factory=list)  # embeddings, then each layer
    scores: list[Tensor] = field(default_factory=list)  # per layer [batch, heads, seq, seq]
    qkv: list[tuple[Tensor, Tensor, Tensor]] = field(default_factory=list)  # per layer [batch, seq, width]


class _Embeddings(nn.Module):
    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        arch = config.arch
        self.word_embeddings = nn.Embedding(arch.vocab_size, arch.hidden, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(arch.max_positions, arch.hidden)
        # BERT always has token types; an arch without them keeps one (all-zero ids).
        self.token_type_embeddings = nn.Embedding(max(arch.type_vocab_size, 1), arch.hidden)
        self.LayerNorm = nn.LayerNorm(arch.hidden, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.position_offset = config.position_offset

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        # RoBERTa numbers positions from pad_token_id + 1; padding positions, which get other
        # numbers there, are masked out of attention and never read.
        start = self.position_offset
        positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, width: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, width)
        self.key = nn.Linear(hidden, width)
        self.value = nn.Linear(hidden, width)
        self.dropout = nn.Dropout(dropout)


class _DenseNorm(nn.Module):
    def __init__(self, n_in: int, hidden: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _Attention(nn.Module):
    def __init__(self, config: ClassifierConfig, shape: LayerShape) -> None:
        super().__init__()
        hidden, width = shape.hidden, shape.attn_width  # width != hidden with a fixed head size
        self.self = _SelfAttention(hidden, shape.heads, width, config.attention_dropout)
        self.output = _DenseNorm(width, hidden, config.layer_norm_eps, config.hidden_dropout)


class _Intermediate(nn.Module):
    def __init__(self, hidden: int, ffn: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, ffn)


class _Layer(nn.Module):
    def __init__(self, config: ClassifierConfig, shape: LayerShape) -> None:
        super().__init__()
        self.attention = _Attention(config, shape)
        self.intermediate = _Intermediate(shape.hidden, shape.ffn)
        self.output = _DenseNorm(shape.ffn, shape.hidden, config.layer_norm_eps, config.hidden_dropout)

    def forward(
        self, x: Tensor, mask_bias: Tensor, head_mask: Tensor | None, neuron_mask: Tensor | None
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
        att = self.attention.self
        batch, seq, _ = x.shape
        q, k, v = att.query(x), att.key(x), att.value(x)
        width = q.shape[-1]
        head_dim = width // att.heads

        def split(t: Tensor) -> Tensor:
            return t.view(batch, seq, att.heads, head_dim).transpose(1, 2)

        scores = torch.matmul(split(q), split(k).transpose(-1, -2)) / math.sqrt(head_dim)
        probs = att.dropout(torch.softmax(scores + mask_bias, dim=-1))
        context = torch.matmul(probs, split(v))
        if head_mask is not None:
            context = context * head_mask.view(1, -1, 1, 1)
        context = context.transpose(1, 2).reshape(batch, seq, width)
        x = self.attention.output(context, x)
        inner = nn.functional.gelu(self.intermediate.dense(x))
        if neuron_mask is not None:
            inner = inner * neuron_mask
        return self.output(inner, x), scores, (q, k, v)


class _Encoder(nn.Module):
    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        arch = config.arch
        self.layer = nn.ModuleList(_Layer(config, shape) for shape in arch.layers)


class _Pooler(nn.Module):
    def __init__(self, hidden: int, activation: str) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.activation = POOLER_ACTIVATIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.dense(x[:, 0]))


class _Bert(nn.Module):
    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)
        self.pooler = _Pooler(config.arch.hidden, config.pooler_activation)


class Classifier(nn.Module):
    """BERT sequence classifier (Hugging Face ``BertForSequenceClassification`` layout)."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = _Bert(config)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.classifier = nn.Linear(config.arch.hidden, config.num_labels)
        self.apply(_init_bert_weights)

    @property
    def arch(self) -> Arch:
        return self.config.arch

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        *,
        want: Collection[str] = (),
        masks: Masks | None = None,
        layers: Collection[int] | None = None,
    ) -> Outputs:
        """Logits, plus the intermediate results named in ``want`` (``hidden_states``,
        ``scores``, ``qkv``). ``layers`` runs only those encoder layers (0-based), the
        teacher that a layer-dropping student imitates."""
        unknown = set(want) - {HIDDEN_STATES, SCORES, QKV}
        if unknown:
            raise ValueError(f"unknown outputs {sorted(unknown)}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None or self.bert.embeddings.token_type_embeddings.num_embeddings == 1:
            # RoBERTa and DistilBERT have one token type, whatever a tokenizer says.
            token_type_ids = torch.zeros_like(input_ids)
        dtype = self.classifier.weight.dtype
        # Padding keys get the most negative finite number, as Hugging Face does: -inf
        # would turn a fully masked row into NaNs.
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        x = self.bert.embeddings(input_ids, token_type_ids)
        if masks is not None:
            x = x * masks.hidden
        out = Outputs(logits=x)  # logits are set below
        if HIDDEN_STATES in want:
            out.hidden_states.append(x)
        for i, layer in enumerate(self.bert.encoder.layer):
            if layers is not None and i not in layers:
                continue
            x, scores, qkv = layer(
                x,
                mask_bias,
                None if masks is None else masks.heads[i],
                None if masks is None else masks.neurons[i],
            )
            if HIDDEN_STATES in want:
                out.hidden_states.append(x)
            if SCORES in want:
                out.scores.append(scores)
            if QKV in want:
                out.qkv.append(qkv)
        out.logits = self.classifier(self.dropout(self.bert.pooler(x)))
        return out


class LogitsOnly(nn.Module):
    """``Classifier`` returning a plain logits tensor: what ONNX export traces."""

    def __init__(self, model: Classifier) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        return self.model(input_ids, attention_mask, token_type_ids).logits


def _init_bert_weights(module: nn.Module) -> None:
    """BERT's initialisation: N(0, 0.02) weights, zero biases, unit LayerNorms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
