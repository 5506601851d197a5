"""The torch reference modules of ``latbench.models.torch_modules`` written for JAX.

``from_torch(module)`` turns a built torch module into a pure function
``apply(params, *inputs)`` and its ``params`` (numpy arrays copied from the module's
weights), so the JAX program computes exactly what the torch reference computes, with
the same weights: the backend checks one against the other. Weights are arguments of the
function, not constants closed over: XLA then neither folds them into the executable
(slow compiles, huge binaries) nor specialises on their values, and a model-context
stack keeps six distinct copies in memory, as a deployed encoder does.

Linear weights are stored transposed (``in × out``), so a projection is ``x @ w + b``
with no transpose in the timed program. LayerNorm statistics are computed in float32
whatever the precision, as torch does on the CPU and Flax does by default.

Importing this module imports jax and torch; the xla backend imports it in ``prepare``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from torch import nn

from latbench.models import torch_modules as tm

#: Precisions the JAX modules run in, as numpy dtypes (bfloat16 from ml_dtypes, via jax).
JAX_DTYPES: dict[str, Any] = {"fp32": np.dtype(np.float32), "bf16": np.dtype(jnp.bfloat16)}

Params = Any  # a pytree (dicts and lists) of arrays
Apply = Callable[..., jax.Array]


@dataclass(frozen=True)
class JaxModel:
    """A pure function of ``(params, *inputs)`` and the params it takes."""

    apply: Apply
    params: Params


def from_torch(module: nn.Module) -> JaxModel:
    """The JAX function computing what ``module`` computes, and its weights as numpy arrays."""
    for kind, convert in _CONVERTERS:
        if isinstance(module, kind):
            return convert(module)
    raise TypeError(f"no JAX version of {type(module).__name__}")


def cast(params: Params, dtype: np.dtype) -> Params:
    """``params`` with every floating-point array in ``dtype`` (integer arrays unchanged)."""
    return jax.tree.map(lambda a: a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a, params)


def input_array(x: Any, dtype: np.dtype) -> np.ndarray:
    """A torch input as numpy: token ids as int32 (JAX's default integer), floats in ``dtype``."""
    array = x.detach().numpy()
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int32)
    return array.astype(dtype)


# --- the computations -----------------------------------------------------------------
def layer_norm(x: jax.Array, w: jax.Array, b: jax.Array, eps: float) -> jax.Array:
    f32 = jnp.float32
    x32 = x.astype(f32)
    mean = x32.mean(-1, keepdims=True)
    var = jnp.square(x32 - mean).mean(-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + eps) * w.astype(f32) + b.astype(f32)
    return y.astype(x.dtype)


def linear(x: jax.Array, p: Params) -> jax.Array:
    return x @ p["w"] + p["b"]


def gelu(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=False)  # torch's default GELU is the exact (erf) one


def split_heads(x: jax.Array, heads: int) -> jax.Array:
    batch, seq, width = x.shape
    return x.reshape(batch, seq, heads, width // heads).transpose(0, 2, 1, 3)


def merge_heads(x: jax.Array) -> jax.Array:
    batch, heads, seq, head_dim = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, seq, heads * head_dim)


def embeddings(p: Params, input_ids: jax.Array, eps: float) -> jax.Array:
    seq_len = input_ids.shape[1]
    x = jnp.take(p["word"], input_ids, axis=0) + p["position"][:seq_len]
    if "token_type" in p:
        x = x + p["token_type"]  # single-segment input: token type 0 everywhere
    return layer_norm(x, p["norm_w"], p["norm_b"], eps)


def encoder_layer(p: Params, x: jax.Array, heads: int, scale: float, eps: float) -> jax.Array:
    """Post-LayerNorm BERT layer, as ``torch_modules.EncoderLayer``."""
    q, k, v = jnp.split(linear(x, p["qkv"]), 3, axis=-1)
    q, k, v = (split_heads(t, heads) for t in (q, k, v))
    probs = jax.nn.softmax((q @ k.swapaxes(-1, -2)) * scale, axis=-1)
    attn = linear(merge_heads(probs @ v), p["out"])
    x = layer_norm(x + attn, p["norm1_w"], p["norm1_b"], eps)
    return layer_norm(x + linear(gelu(linear(x, p["up"])), p["down"]), p["norm2_w"], p["norm2_b"], eps)


# --- converters from the torch modules --------------------------------------------------
def _np(tensor: Any) -> np.ndarray:
    return tensor.detach().numpy().copy()


def _linear_params(layer: nn.Linear) -> Params:
    return {"w": _np(layer.weight).T.copy(), "b": _np(layer.bias)}


def _norm_params(norm: nn.LayerNorm, prefix: str = "norm") -> Params:
    return {f"{prefix}_w": _np(norm.weight), f"{prefix}_b": _np(norm.bias)}


def _layer(layer: tm.EncoderLayer) -> tuple[Params, Callable[[Params, jax.Array], jax.Array]]:
    params = {
        "qkv": _linear_params(layer.qkv),
        "out": _linear_params(layer.out),
        "up": _linear_params(layer.up),
        "down": _linear_params(layer.down),
        **_norm_params(layer.norm1, "norm1"),
        **_norm_params(layer.norm2, "norm2"),
    }
    heads, scale, eps = layer.heads, layer.scale, layer.norm1.eps

    def apply(p: Params, x: jax.Array) -> jax.Array:
        return encoder_layer(p, x, heads, scale, eps)

    return params, apply


def _embeddings(module: tm.Embeddings) -> tuple[Params, Callable[[Params, jax.Array], jax.Array]]:
    params = {"word": _np(module.word.weight), "position": _np(module.position.weight)}
    if module.token_type is not None:
        params["token_type"] = _np(module.token_type.weight[0])
    params.update(_norm_params(module.norm))
    eps = module.norm.eps

    def apply(p: Params, input_ids: jax.Array) -> jax.Array:
        return embeddings(p, input_ids, eps)

    return params, apply


def _convert_layers(
    layers: nn.ModuleList,
) -> tuple[list[Params], Callable[[list[Params], jax.Array], jax.Array]]:
    converted = [_layer(layer) for layer in layers]  # type: ignore[arg-type]
    applies = [apply for _, apply in converted]

    def apply(ps: list[Params], x: jax.Array) -> jax.Array:
        for p, layer_apply in zip(ps, applies, strict=True):  # unrolled: distinct weights per layer
            x = layer_apply(p, x)
        return x

    return [params for params, _ in converted], apply


def _from_embeddings(module: tm.Embeddings) -> JaxModel:
    params, apply = _embeddings(module)
    return JaxModel(apply, params)


def _from_layer(module: tm.EncoderLayer) -> JaxModel:
    params, apply = _layer(module)
    return JaxModel(apply, params)


def _from_stack(module: tm.LayerStack) -> JaxModel:
    params, apply = _convert_layers(module.layers)
    return JaxModel(apply, params)


def _from_encoder(module: tm.Encoder) -> JaxModel:
    emb_params, emb_apply = _embeddings(module.embeddings)
    layer_params, layers_apply = _convert_layers(module.layers)

    def apply(p: Params, input_ids: jax.Array) -> jax.Array:
        return layers_apply(p["layers"], emb_apply(p["embeddings"], input_ids))

    return JaxModel(apply, {"embeddings": emb_params, "layers": layer_params})


def _from_linear(module: tm.Linear) -> JaxModel:
    with_gelu = module.gelu

    def apply(p: Params, x: jax.Array) -> jax.Array:
        y = linear(x, p)
        return gelu(y) if with_gelu else y

    return JaxModel(apply, _linear_params(module.proj))


def _from_attn_scores(module: tm.AttnScores) -> JaxModel:
    scale = module.scale

    def apply(p: Params, q: jax.Array, k: jax.Array) -> jax.Array:
        return (q @ k.swapaxes(-1, -2)) * scale

    return JaxModel(apply, {})


def _from_softmax(module: tm.Softmax) -> JaxModel:
    def apply(p: Params, scores: jax.Array) -> jax.Array:
        return jax.nn.softmax(scores, axis=-1)

    return JaxModel(apply, {})


def _from_attn_context(module: tm.AttnContext) -> JaxModel:
    def apply(p: Params, probs: jax.Array, v: jax.Array) -> jax.Array:
        return probs @ v

    return JaxModel(apply, {})


def _from_add_layernorm(module: tm.AddLayerNorm) -> JaxModel:
    eps = module.norm.eps

    def apply(p: Params, x: jax.Array, residual: jax.Array) -> jax.Array:
        return layer_norm(x + residual, p["norm_w"], p["norm_b"], eps)

    return JaxModel(apply, _norm_params(module.norm))


_CONVERTERS: tuple[tuple[type[nn.Module], Callable[[Any], JaxModel]], ...] = (
    (tm.Encoder, _from_encoder),
    (tm.LayerStack, _from_stack),
    (tm.EncoderLayer, _from_layer),
    (tm.Embeddings, _from_embeddings),
    (tm.Linear, _from_linear),
    (tm.AttnScores, _from_attn_scores),
    (tm.Softmax, _from_softmax),
    (tm.AttnContext, _from_attn_context),
    (tm.AddLayerNorm, _from_add_layernorm),
)
