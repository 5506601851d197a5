"""Encoders and layers in the form users deploy: the graph a BERT model exported from
``transformers`` has, built for any latbench architecture.

``torch_modules`` writes a layer the short way (one fused QKV projection, no attention
mask, static shapes). A model exported from ``transformers`` (``BertModel`` and its
relatives, ``attn_implementation="sdpa"``, input ids and attention mask, dynamic batch and
sequence axes, opset 17) differs in ways ONNX Runtime times: three projections, a boolean
mask turned into an additive one in every layer (SDPA's ``Where``, ``Add``, and the
``IsNaN`` guard after the softmax), token-type and position ids sliced from buffers, and
shapes computed at run time (``Shape``/``Gather``/``Concat`` around every reshape), which
also keeps ONNX Runtime from fusing bias adds into ``Gemm`` or residual adds into
``SkipLayerNormalization`` as it does on a static graph. The modules here follow
``transformers``' BERT code path operation by operation, without depending on it, and
:func:`export_deployed` is the one export both latbench's own graphs and users' models
(``latbench.user_models.export_hf_model``) go through. ``benchmarks/builder_bench.py``
measures how closely the two agree.

Per-layer shapes (heads, FFN width, head size) are free, as in latbench's search spaces.
The pooler is not built: an exported ``AutoModel`` returns the last hidden state, and the
exporter drops the pooler, whose output no one reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from latbench.arch import Arch, LayerShape
from latbench.models.onnx_export import export_onnx
from latbench.models.torch_modules import MODEL_CONTEXT_COPIES, Built, Embeddings, build
from latbench.specs import BlockSpec, EncoderSpec, OpSpec, Spec

#: The graph form's name, recorded in the fingerprint of the backends that load it, so
#: measurements of the earlier (fused, static) form are never mixed with these.
GRAPH_FORM = "deployed-v1"


class DeployedEmbeddings(Embeddings):
    """``BertEmbeddings``: word, token-type (all zeros, from a buffer) and position ids
    (sliced from a buffer), summed in that order, then LayerNorm."""

    def __init__(self, arch: Arch) -> None:
        super().__init__(arch)
        self.register_buffer("position_ids", torch.arange(arch.max_positions).unsqueeze(0), persistent=False)
        self.register_buffer(
            "token_type_ids", torch.zeros((1, arch.max_positions), dtype=torch.long), persistent=False
        )

    def forward(self, input_ids: Tensor) -> Tensor:
        batch, seq = input_ids.shape
        x = self.word(input_ids)
        if self.token_type is not None:
            x = x + self.token_type(self.token_type_ids[:, :seq].expand(batch, seq))
        x = x + self.position(self.position_ids[:, :seq])
        return self.norm(x)


def attention_mask_4d(attention_mask: Tensor) -> Tensor:
    """The padding mask (batch, seq) of ones and zeros as SDPA's boolean
    (batch, 1, seq, seq) mask, True where a query may attend to a key: built from index
    ranges the way ``transformers``' ``sdpa_mask`` builds a bidirectional padding mask
    (a query may see every key, and a key is seen where the padding mask says so), so
    the exported graph computes it with the same kind and number of operations."""
    batch, seq = attention_mask.shape
    padding = attention_mask.bool()
    batch_idx = torch.arange(batch)[:, None, None, None]
    q_idx = torch.arange(seq)[None, None, :, None]
    kv_idx = torch.arange(seq)[None, None, None, :]
    allowed = (q_idx >= 0) & padding[batch_idx, kv_idx]
    return allowed.expand(batch, 1, seq, seq)


class DeployedLayer(nn.Module):
    """``BertLayer`` with SDPA attention: three projections, the mask applied by
    ``scaled_dot_product_attention``, post-LayerNorm residuals, an erf GELU FFN."""

    def __init__(self, shape: LayerShape) -> None:
        super().__init__()
        self.heads, self.head_dim = shape.heads, shape.head_dim
        self.query = nn.Linear(shape.hidden, shape.attn_width)
        self.key = nn.Linear(shape.hidden, shape.attn_width)
        self.value = nn.Linear(shape.hidden, shape.attn_width)
        self.out = nn.Linear(shape.attn_width, shape.hidden)
        self.norm1 = nn.LayerNorm(shape.hidden, eps=1e-12)
        self.up = nn.Linear(shape.hidden, shape.ffn)
        self.down = nn.Linear(shape.ffn, shape.hidden)
        self.norm2 = nn.LayerNorm(shape.hidden, eps=1e-12)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        # shapes read as transformers reads them, so the export has the same shape ops
        input_shape = x.shape[:-1]
        split = (*input_shape, -1, self.head_dim)
        q = self.query(x).view(*split).transpose(1, 2)
        k = self.key(x).view(*split).transpose(1, 2)
        v = self.value(x).view(*split).transpose(1, 2)
        q_length = q.shape[2]
        context = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, scale=self.head_dim**-0.5
        )
        # transformers 5's SDPA path reshapes the output (a no-op here, undoing a GQA
        # packing BERT does not use): a handful of shape ops per layer, as in the export
        context = context.reshape(context.shape[0], -1, q_length, v.shape[-1])
        context = context.transpose(1, 2).contiguous().reshape(*input_shape, -1).contiguous()
        x = self.norm1(self.out(context) + x)
        return self.norm2(self.down(nn.functional.gelu(self.up(x))) + x)


class DeployedStack(nn.Module):
    """Layers applied in sequence to hidden states under one padding mask: a block (one
    layer, or distinct copies of it in model context) as it runs inside an encoder."""

    def __init__(self, shapes: Sequence[LayerShape]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DeployedLayer(shape) for shape in shapes)

    def forward(self, hidden_states: Tensor, attention_mask: Tensor) -> Tensor:
        mask = attention_mask_4d(attention_mask)
        for layer in self.layers:
            hidden_states = layer(hidden_states, mask)
        return hidden_states


class DeployedEncoder(nn.Module):
    """``BertModel``'s last hidden state: embeddings, then the layers under the mask."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.embeddings = DeployedEmbeddings(arch)
        self.encoder = DeployedStack(arch.layers)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.encoder(self.embeddings(input_ids), attention_mask)


def export_deployed(module: nn.Module, inputs: Sequence[Tensor], input_names: Sequence[str]) -> bytes:
    """ONNX of ``module`` as users export a model: ``onnx_export.export_onnx`` (TorchScript
    exporter, opset 17) with every input's first two axes dynamic ("batch", "sequence")
    and the output's batch axis too."""
    axes = {0: "batch", 1: "sequence"}
    dynamic = {**{name: axes for name in input_names}, "output": {0: "batch"}}
    return export_onnx(Built(module.eval(), tuple(inputs), tuple(input_names)), dynamic_axes=dynamic)


def build_deployed(spec: Spec, *, seed: int = 0, copies: int = MODEL_CONTEXT_COPIES) -> Built:
    """``spec``'s module in the deployed form with example inputs (fp32, eval mode, weights
    from ``seed``, the caller's RNG untouched). Encoders take ``input_ids`` and
    ``attention_mask``, blocks ``hidden_states`` and ``attention_mask`` (all ones: no
    padding, as a benchmark's fixed-length batch); operators are built as ``build`` builds
    them, each one alone."""
    if isinstance(spec, OpSpec):
        return build(spec, seed=seed, copies=copies)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # module initialisers draw from the global RNG
        gen = torch.Generator().manual_seed(seed)
        b, s = spec.workload.batch, spec.workload.seq_len
        mask = torch.ones((b, s), dtype=torch.long)
        if isinstance(spec, EncoderSpec):
            ids = torch.randint(0, spec.arch.vocab_size, (b, s), generator=gen)
            return Built(DeployedEncoder(spec.arch).eval(), (ids, mask), ("input_ids", "attention_mask"))
        if isinstance(spec, BlockSpec):
            n = 1 if spec.context == "isolated" else copies
            x = torch.randn(b, s, spec.layer.hidden, generator=gen)
            module = DeployedStack([spec.layer] * n).eval()
            return Built(module, (x, mask), ("hidden_states", "attention_mask"), n)
    raise TypeError(f"cannot build {type(spec).__name__}")
