"""The two norms of the DiTs: parameter-free LayerNorm and per-head RMSNorm with a learned scale."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def layer_norm(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    """Non-affine LayerNorm over the last axis, computed and returned in float32 (torch autocast does the same)."""
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


class RMSNorm(nnx.Module):
    """x * rsqrt(mean(x^2) + eps) * scale over the last axis; the normalisation runs in float32."""

    def __init__(self, dim: int, eps: float, *, param_dtype=jnp.float32):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((dim,), param_dtype), logical_axes=("head_dim",))

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
        return (normed.astype(self.scale.dtype) * self.scale[...]).astype(x.dtype)
