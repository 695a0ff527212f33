"""The DiT MLP: D -> 4D -> D with tanh-approximated GELU (torch `ff.net.0.proj` / `ff.net.2`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.layers.linear import dense


class FeedForward(nnx.Module):
    def __init__(self, dim: int, *, mult: int = 4, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.proj_in = dense(dim, mult * dim, ("embed", "mlp"), **kw)
        self.proj_out = dense(mult * dim, dim, ("mlp", "embed"), **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.proj_out(jax.nn.gelu(self.proj_in(x), approximate=True))
