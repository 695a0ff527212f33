"""DiT attention modules: joint text+image attention (double/joint blocks) and single-stream attention."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.layers.attention import TokenMask, attention
from pyramid_jax.layers.linear import dense
from pyramid_jax.layers.norms import RMSNorm
from pyramid_jax.layers.rope import apply_rope

Rope = tuple[jax.Array, jax.Array]


def last_tokens(x: jax.Array, count: int | None, axis: int = 1) -> jax.Array:
    """The last `count` tokens of `x` along `axis` (None: all of them)."""
    return x if count is None else jax.lax.slice_in_dim(x, x.shape[axis] - count, x.shape[axis], axis=axis)


def _heads(proj: nnx.Linear, norm: RMSNorm | None, x: jax.Array, num_heads: int) -> jax.Array:
    """Projects `[B, N, D]` to `[B, N, H, d]` (feature h*d + i is head h), then applies the per-head norm."""
    y = proj(x)
    y = y.reshape(*y.shape[:-1], num_heads, -1)
    return y if norm is None else norm(y)


class JointAttention(nnx.Module):
    """Attention over [text ; image] of one stage, with separate projections per stream (dit_spec.md §2.5).

    With `context_pre_only` (the MMDiT last block) the text outputs are dropped and there is no `to_add_out`.
    """

    def __init__(self, dim: int, num_heads: int, qk_eps: float, *, context_pre_only: bool = False,
                 backend: str = "auto", rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.num_heads, self.backend, self.context_pre_only = num_heads, backend, context_pre_only
        head_dim = dim // num_heads
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        for name in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj"):
            setattr(self, name, dense(dim, dim, ("embed", "heads"), **kw))
        for name in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
            setattr(self, name, RMSNorm(head_dim, qk_eps, param_dtype=param_dtype))
        self.to_out = dense(dim, dim, ("heads", "embed"), **kw)
        self.to_add_out = None if context_pre_only else dense(dim, dim, ("heads", "embed"), **kw)

    def __call__(self, x: jax.Array, c: jax.Array, rope: Rope, mask: TokenMask, queries: int | None = None):
        """x `[B, N, D]` image, c `[B, L, D]` text -> (image out `[B, N, D]`, text out `[B, L, D]` or None).

        `queries` (pre-only blocks, whose text outputs nobody reads): only the last that many image tokens' outputs
        are computed and returned, `[B, queries, D]`."""
        h = self.num_heads
        if queries is None:
            text_q = _heads(self.add_q_proj, self.norm_added_q, c, h)
            q = jnp.concatenate([text_q, _heads(self.to_q, self.norm_q, x, h)], 1)
        elif self.context_pre_only:
            q = _heads(self.to_q, self.norm_q, last_tokens(x, queries), h)
        else:
            raise ValueError("only a pre-only block (no text outputs) computes the outputs of some queries alone")
        k = jnp.concatenate([_heads(self.add_k_proj, self.norm_added_k, c, h), _heads(self.to_k, self.norm_k, x, h)], 1)
        v = jnp.concatenate([_heads(self.add_v_proj, None, c, h), _heads(self.to_v, None, x, h)], 1)
        q = apply_rope(q, *(last_tokens(r, q.shape[1], axis=0) for r in rope))
        out = attention(q, apply_rope(k, *rope), v, mask, self.backend)
        out = out.reshape(*out.shape[:2], -1)
        if queries is not None:
            return self.to_out(out), None
        length = c.shape[1]
        txt = None if self.to_add_out is None else self.to_add_out(out[:, :length])
        return self.to_out(out[:, length:]), txt


class SingleStreamAttention(nnx.Module):
    """Self-attention over one stage's [text ; image] sequence with no output projection (Flux single blocks)."""

    def __init__(self, dim: int, num_heads: int, qk_eps: float, *, backend: str = "auto", rngs: nnx.Rngs,
                 dtype=jnp.float32, param_dtype=jnp.float32):
        self.num_heads, self.backend = num_heads, backend
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.to_q = dense(dim, dim, ("embed", "heads"), **kw)
        self.to_k = dense(dim, dim, ("embed", "heads"), **kw)
        self.to_v = dense(dim, dim, ("embed", "heads"), **kw)
        self.norm_q = RMSNorm(dim // num_heads, qk_eps, param_dtype=param_dtype)
        self.norm_k = RMSNorm(dim // num_heads, qk_eps, param_dtype=param_dtype)

    def __call__(self, x: jax.Array, rope: Rope, mask: TokenMask, queries: int | None = None) -> jax.Array:
        """x `[B, N, D]` -> `[B, M, D]`, the outputs of the last M = `queries` tokens (None: all N)."""
        h = self.num_heads
        q = apply_rope(_heads(self.to_q, self.norm_q, last_tokens(x, queries), h),
                       *(last_tokens(r, queries, axis=0) for r in rope))
        k = apply_rope(_heads(self.to_k, self.norm_k, x, h), *rope)
        out = attention(q, k, _heads(self.to_v, None, x, h), mask, self.backend)
        return out.reshape(*out.shape[:2], -1)
