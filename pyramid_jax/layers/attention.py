"""The one attention function of the project, with its masking rule and selectable backends.

The reference's mask (dit_spec.md §2.6) is never passed around as an `[N, N]` array: a `TokenMask` holds the
per-token vectors it is built from, so a blockwise kernel can generate it on the fly.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class TokenMask(NamedTuple):
    """Per-token mask inputs for a sequence of N tokens.

    valid: `[B, N]` bool; token i may attend token j only if `valid[i] == valid[j]` (pad sees only pad).
    frame: `[N]` int temporal ids, or None; when given, i may attend j only if `frame[i] >= frame[j]`.
    """

    valid: jax.Array
    frame: jax.Array | None = None

    def dense(self) -> jax.Array:
        """The full boolean mask `[B, 1, N, N]` (True = may attend)."""
        mask = self.valid[:, :, None] == self.valid[:, None, :]
        if self.frame is not None:
            mask = mask & (self.frame[:, None] >= self.frame[None, :])[None]
        return mask[:, None]


def _xla_attention(q, k, v, mask: TokenMask, scale: float):
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * scale
    logits = jnp.where(mask.dense(), logits, -jnp.inf)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v)


ATTENTION_BACKENDS: dict[str, Callable] = {"xla": _xla_attention}


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: TokenMask, backend: str = "xla") -> jax.Array:
    """softmax(q k^T / sqrt(d), masked) v for q, k, v `[B, N, H, d]`; returns `[B, N, H, d]`."""
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {sorted(ATTENTION_BACKENDS)}")
    return ATTENTION_BACKENDS[backend](q, k, v, mask, q.shape[-1] ** -0.5)
