"""Blocks shared by CLIP and T5: multi-head self-attention, the (optionally gated) MLP, embeddings, activations.

Both models are pre-norm transformers whose layers differ only in biases, the attention scale, T5's position bias
and the MLP gate, so one attention and one MLP module serve both (the conversion tables map the torch names).
"""

from __future__ import annotations

import jax
from flax import nnx

from pyramid_jax.layers.attention import TokenMask, attention
from pyramid_jax.layers.linear import Axes, dense

ACTIVATION_FNS = {
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
}


def embedding(num: int, features: int, axes: Axes, *, rngs: nnx.Rngs, dtype, param_dtype) -> nnx.Embed:
    return nnx.Embed(num, features, rngs=rngs, dtype=dtype, param_dtype=param_dtype,
                     embedding_metadata={"logical_axes": tuple(axes)})


class SelfAttention(nnx.Module):
    """Projections `q, k, v` (D -> H*d) and `o` (H*d -> D) around the project's `attention`."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, *, use_bias: bool, rngs: nnx.Rngs, dtype,
                 param_dtype):
        self.num_heads = num_heads
        kw = dict(use_bias=use_bias, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        inner = num_heads * head_dim
        self.q = dense(dim, inner, ("embed", "heads"), **kw)
        self.k = dense(dim, inner, ("embed", "heads"), **kw)
        self.v = dense(dim, inner, ("embed", "heads"), **kw)
        self.o = dense(inner, dim, ("heads", "embed"), **kw)

    def __call__(self, x: jax.Array, mask: TokenMask, *, scale: float | None = None,
                 bias: jax.Array | None = None) -> jax.Array:
        heads = [p(x).reshape(*x.shape[:-1], self.num_heads, -1) for p in (self.q, self.k, self.v)]
        out = attention(*heads, mask, scale=scale, bias=bias)
        return self.o(out.reshape(*x.shape[:-1], -1))


class MLP(nnx.Module):
    """wo(act(wi x)), or wo(act(wi x) * wi_linear x) when `gated` (T5 v1.1's gated GELU).

    `wo_dtype` overrides the output projection's storage and compute dtype (T5 keeps `wo` in float32 under fp16).
    """

    def __init__(self, dim: int, hidden: int, activation: str, *, gated: bool, use_bias: bool, rngs: nnx.Rngs,
                 dtype, param_dtype, wo_dtype=None):
        self.act = ACTIVATION_FNS[activation]
        kw = dict(use_bias=use_bias, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.wi = dense(dim, hidden, ("embed", "mlp"), **kw)
        self.wi_linear = dense(dim, hidden, ("embed", "mlp"), **kw) if gated else None
        if wo_dtype is not None:
            kw.update(dtype=wo_dtype, param_dtype=wo_dtype)
        self.wo = dense(hidden, dim, ("mlp", "embed"), **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.act(self.wi(x))
        return self.wo(h if self.wi_linear is None else h * self.wi_linear(x))


def norm(dim: int, eps: float, *, centered: bool, rngs: nnx.Rngs, param_dtype):
    """CLIP's LayerNorm or, when not `centered`, T5's RMS norm (scale only, no mean subtraction).

    Statistics are float32 and no compute dtype is forced: the output takes the input's dtype (or float32 for a
    float32 input), so a float32 residual stream is normalised without first being rounded to half precision.
    """
    meta = {"logical_axes": ("embed",)}
    if centered:
        return nnx.LayerNorm(dim, epsilon=eps, use_fast_variance=False, rngs=rngs, param_dtype=param_dtype,
                             scale_metadata=meta, bias_metadata=meta)
    return nnx.RMSNorm(dim, epsilon=eps, rngs=rngs, param_dtype=param_dtype, scale_metadata=meta)
