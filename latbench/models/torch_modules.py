"""BERT-style encoders, single layers, layer stacks and single operators as torch modules.

Attention is written out as explicit matrix products (not a fused SDPA kernel) so that the
operators of a layer are the same ones that are measured on their own, and so that the
ONNX export has the shape ONNX Runtime's transformer fusions recognise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from latbench.arch import Arch, LayerShape
from latbench.specs import BlockSpec, EncoderSpec, OpSpec, Spec

#: How many distinct copies of a layer a model-context block measurement stacks.
#: Six is the middle of the encoders a search produces (4-12 layers): by the time a copy
#: runs again the other five have evicted its weights from L1/L2, and from L3 when the
#: layer is large, as in a real encoder. Latency = stack latency / copies.
MODEL_CONTEXT_COPIES = 6

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Embeddings(nn.Module):
    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.word = nn.Embedding(arch.vocab_size, arch.hidden)
        self.position = nn.Embedding(arch.max_positions, arch.hidden)
        self.token_type = nn.Embedding(arch.type_vocab_size, arch.hidden) if arch.type_vocab_size else None
        self.norm = nn.LayerNorm(arch.hidden, eps=1e-12)

    def forward(self, input_ids: Tensor) -> Tensor:
        seq_len = input_ids.shape[1]
        positions = torch.arange(seq_len, device=input_ids.device).unsqueeze(0)
        x = self.word(input_ids) + self.position(positions)
        if self.token_type is not None:
            x = x + self.token_type.weight[0]  # single-segment input: token type 0 everywhere
        return self.norm(x)


def split_heads(x: Tensor, heads: int) -> Tensor:
    batch, seq, width = x.shape
    return x.reshape(batch, seq, heads, width // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    batch, heads, seq, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, seq, heads * head_dim)


class EncoderLayer(nn.Module):
    """Post-LayerNorm BERT layer: self-attention and a GELU FFN, each with add & norm."""

    def __init__(self, shape: LayerShape) -> None:
        super().__init__()
        self.heads = shape.heads
        self.scale = 1.0 / math.sqrt(shape.head_dim)
        self.qkv = nn.Linear(shape.hidden, 3 * shape.attn_width)
        self.out = nn.Linear(shape.attn_width, shape.hidden)
        self.norm1 = nn.LayerNorm(shape.hidden, eps=1e-12)
        self.up = nn.Linear(shape.hidden, shape.ffn)
        self.down = nn.Linear(shape.ffn, shape.hidden)
        self.norm2 = nn.LayerNorm(shape.hidden, eps=1e-12)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (split_heads(t, self.heads) for t in (q, k, v))
        probs = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * self.scale, dim=-1)
        attn = self.out(merge_heads(torch.matmul(probs, v)))
        x = self.norm1(x + attn)
        return self.norm2(x + self.down(nn.functional.gelu(self.up(x))))


class LayerStack(nn.Module):
    """Distinct copies of one layer applied in sequence: a layer in model context."""

    def __init__(self, shape: LayerShape, copies: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(shape) for _ in range(copies))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class Encoder(nn.Module):
    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.embeddings = Embeddings(arch)
        self.layers = nn.ModuleList(EncoderLayer(shape) for shape in arch.layers)

    def forward(self, input_ids: Tensor) -> Tensor:
        x = self.embeddings(input_ids)
        for layer in self.layers:
            x = layer(x)
        return x


# --- single operators -----------------------------------------------------------------
class Linear(nn.Module):
    def __init__(self, n_in: int, n_out: int, gelu: bool = False) -> None:
        super().__init__()
        self.proj = nn.Linear(n_in, n_out)
        self.gelu = gelu

    def forward(self, x: Tensor) -> Tensor:
        y = self.proj(x)
        return nn.functional.gelu(y) if self.gelu else y


class AttnScores(nn.Module):
    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.scale = 1.0 / math.sqrt(head_dim)

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        return torch.matmul(q, k.transpose(-1, -2)) * self.scale


class Softmax(nn.Module):
    def forward(self, scores: Tensor) -> Tensor:
        return torch.softmax(scores, dim=-1)


class AttnContext(nn.Module):
    def forward(self, probs: Tensor, v: Tensor) -> Tensor:
        return torch.matmul(probs, v)


class AddLayerNorm(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.norm(x + residual)


@dataclass(frozen=True)
class Built:
    """A module ready to time: its inputs, their names, and how many spec instances
    one call runs (a model-context block stack runs ``copies`` layers per call)."""

    module: nn.Module
    inputs: tuple[Tensor, ...]
    input_names: tuple[str, ...]
    instances_per_call: int = 1


def build(spec: Spec, *, seed: int = 0, copies: int = MODEL_CONTEXT_COPIES) -> Built:
    """The torch module and example inputs for ``spec`` (fp32, eval mode, fixed seed).

    Weights are initialised from ``seed`` inside a forked RNG, so the caller's global
    torch RNG state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # module initialisers draw from the global RNG
        return _build(spec, torch.Generator().manual_seed(seed), copies)


def _build(spec: Spec, gen: torch.Generator, copies: int) -> Built:
    w = spec.workload
    b, s = w.batch, w.seq_len

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=gen)

    if isinstance(spec, EncoderSpec):
        ids = torch.randint(0, spec.arch.vocab_size, (b, s), generator=gen)
        return Built(Encoder(spec.arch).eval(), (ids,), ("input_ids",))
    if isinstance(spec, BlockSpec):
        h = spec.layer.hidden
        if spec.context == "isolated":
            return Built(EncoderLayer(spec.layer).eval(), (rand(b, s, h),), ("hidden_states",))
        return Built(LayerStack(spec.layer, copies).eval(), (rand(b, s, h),), ("hidden_states",), copies)
    if isinstance(spec, OpSpec):
        return _build_op(spec, rand, gen)
    raise TypeError(f"cannot build {type(spec).__name__}")


def _build_op(spec: OpSpec, rand, gen: torch.Generator) -> Built:  # type: ignore[no-untyped-def]
    b, s = spec.workload.batch, spec.workload.seq_len
    h, a, f, w = spec.hidden, spec.heads, spec.ffn, spec.width
    op = spec.op
    if op == "embedding":
        arch = Arch.uniform(1, h, 1, 1, vocab_size=spec.vocab_size, max_positions=max(512, s))
        ids = torch.randint(0, spec.vocab_size, (b, s), generator=gen)
        return Built(Embeddings(arch).eval(), (ids,), ("input_ids",))
    if op == "qkv_proj":
        return Built(Linear(h, 3 * w).eval(), (rand(b, s, h),), ("x",))
    if op == "out_proj":
        return Built(Linear(w, h).eval(), (rand(b, s, w),), ("x",))
    if op == "ffn_up_gelu":
        return Built(Linear(h, f, gelu=True).eval(), (rand(b, s, h),), ("x",))
    if op == "ffn_down":
        return Built(Linear(f, h).eval(), (rand(b, s, f),), ("x",))
    if op == "add_layernorm":
        return Built(AddLayerNorm(h).eval(), (rand(b, s, h), rand(b, s, h)), ("x", "residual"))
    # the attention operators' ``hidden`` is the attention width (see latbench.specs)
    if op == "attn_scores":
        d = h // a
        return Built(AttnScores(d).eval(), (rand(b, a, s, d), rand(b, a, s, d)), ("q", "k"))
    if op == "softmax":
        return Built(Softmax().eval(), (rand(b, a, s, s),), ("scores",))
    if op == "attn_context":
        d = h // a
        return Built(AttnContext().eval(), (rand(b, a, s, s).softmax(-1), rand(b, a, s, d)), ("probs", "v"))
    raise AssertionError(f"unhandled operator {op}")
