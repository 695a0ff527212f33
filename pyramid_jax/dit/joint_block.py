"""The two-stream block shared by both families: Flux's double-stream block and the MMDiT joint block."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.dit.attention import JointAttention, Rope, last_tokens
from pyramid_jax.dit.tokens import HIDDEN_AXES
from pyramid_jax.layers.adaln import AdaLNContinuous, AdaLNZero, modulate
from pyramid_jax.layers.attention import TokenMask
from pyramid_jax.layers.feedforward import FeedForward
from pyramid_jax.parallel.rules import constrain


class JointTransformerBlock(nnx.Module):
    """AdaLN-Zero on both streams, joint attention, then gated MLPs (dit_spec.md §3.3 step 4, §4.3 step 4-5).

    `context_pre_only` (MMDiT's last block): AdaLN-Continuous on the text, and the text stream ends here.
    """

    def __init__(self, dim: int, num_heads: int, qk_eps: float, *, context_pre_only: bool = False,
                 backend: str = "auto", rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.norm1 = AdaLNZero(dim, **kw)
        self.norm1_context = AdaLNContinuous(dim, **kw) if context_pre_only else AdaLNZero(dim, **kw)
        self.attn = JointAttention(dim, num_heads, qk_eps, context_pre_only=context_pre_only, backend=backend, **kw)
        self.ff = FeedForward(dim, **kw)
        self.ff_context = None if context_pre_only else FeedForward(dim, **kw)

    def __call__(self, h: jax.Array, c: jax.Array, temb: jax.Array, rope: Rope, mask: TokenMask,
                 queries: int | None = None):
        """One stage: h `[B, N, D]`, c `[B, L, D]`, temb `[B, D]` -> (h, c); c is None after a pre-only block, which
        with `queries` computes and returns only the last that many image tokens (the others nobody reads)."""
        x, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(h, temb)
        if self.ff_context is None:
            cx = self.norm1_context(c, temb)
        else:
            cx, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp = self.norm1_context(c, temb)
        attn_out, ctx_out = self.attn(x, cx, rope, mask, queries)
        h = constrain(last_tokens(h, queries) + gate_msa[:, None] * attn_out, HIDDEN_AXES)
        h = constrain(h + gate_mlp[:, None] * self.ff(modulate(h, shift_mlp, scale_mlp)), HIDDEN_AXES)
        if self.ff_context is None:
            return h, None
        c = constrain(c + c_gate_msa[:, None] * ctx_out, HIDDEN_AXES)
        c = constrain(c + c_gate_mlp[:, None] * self.ff_context(modulate(c, c_shift_mlp, c_scale_mlp)), HIDDEN_AXES)
        return h, c
