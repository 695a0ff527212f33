"""Timestep and pooled-text conditioning shared by both DiT families (dit_spec.md §2.2)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.layers.linear import dense

TIMESTEP_FREQ_DIM = 256


def timestep_sinusoid(t: jax.Array, dim: int = TIMESTEP_FREQ_DIM, max_period: float = 10000.0) -> jax.Array:
    """[N] timesteps -> [N, dim] features `[cos | sin]` (cosine first), computed in float32."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = t.astype(jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class MLPEmbedder(nnx.Module):
    """linear_2(SiLU(linear_1(x))): the timestep and pooled-text branches."""

    def __init__(self, in_dim: int, dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        init = nnx.initializers.normal(0.02)
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype, kernel_init=init)
        self.linear_1 = dense(in_dim, dim, (None, "mlp"), **kw)
        self.linear_2 = dense(dim, dim, ("mlp", "embed"), **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear_2(jax.nn.silu(self.linear_1(x)))


class TimeTextEmbedding(nnx.Module):
    """temb = timestep branch + pooled-text branch, one [D] vector per (sample, stage) row."""

    def __init__(self, dim: int, pooled_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.timestep_embedder = MLPEmbedder(TIMESTEP_FREQ_DIM, dim, **kw)
        self.text_embedder = MLPEmbedder(pooled_dim, dim, **kw)

    def __call__(self, timestep: jax.Array, pooled: jax.Array) -> jax.Array:
        t_feat = timestep_sinusoid(timestep).astype(pooled.dtype)
        return self.timestep_embedder(t_feat) + self.text_embedder(pooled)
