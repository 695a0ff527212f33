"""Flux single-stream block: one sequence [text ; image], parallel attention and MLP, one output projection."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.dit.attention import Rope, SingleStreamAttention, last_tokens
from pyramid_jax.dit.tokens import HIDDEN_AXES
from pyramid_jax.layers.adaln import AdaLNZeroSingle
from pyramid_jax.layers.attention import TokenMask
from pyramid_jax.layers.linear import dense
from pyramid_jax.parallel.rules import constrain


class SingleTransformerBlock(nnx.Module):
    """x + gate * proj_out([attention(x̂) ; GELU(proj_mlp(x̂))]) (dit_spec.md §3.3 step 6)."""

    def __init__(self, dim: int, num_heads: int, qk_eps: float, *, mlp_ratio: int = 4, backend: str = "auto",
                 rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.norm = AdaLNZeroSingle(dim, **kw)
        self.proj_mlp = dense(dim, mlp_ratio * dim, ("embed", "mlp"), **kw)
        self.attn = SingleStreamAttention(dim, num_heads, qk_eps, backend=backend, **kw)
        self.proj_out = dense((1 + mlp_ratio) * dim, dim, ("mlp", "embed"), **kw)

    def __call__(self, x: jax.Array, temb: jax.Array, rope: Rope, mask: TokenMask,
                 queries: int | None = None) -> jax.Array:
        """One stage: x `[B, L+N, D]`, temb `[B, D]`. With `queries`, only the last that many tokens' outputs are
        computed and returned (the last block, whose other outputs nobody reads)."""
        normed, gate = self.norm(x, temb)
        mlp = jax.nn.gelu(self.proj_mlp(last_tokens(normed, queries)), approximate=True)
        out = self.proj_out(jnp.concatenate([self.attn(normed, rope, mask, queries), mlp], axis=-1))
        return constrain(last_tokens(x, queries) + gate[:, None] * out, HIDDEN_AXES)
