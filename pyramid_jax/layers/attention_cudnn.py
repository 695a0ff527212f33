"""GPU attention backend: cuDNN's fused flash attention (`jax.nn.dot_product_attention(implementation="cudnn")`).

cuDNN takes padding only as sequence lengths, so the `TokenMask` padding rule (query i attends the keys whose
validity equals its own) runs as one call per validity: queries of that validity sorted first and cut by a query
length, keys of that validity sorted first and cut by a key length (attention is permutation-equivariant once
RoPE is applied; cuDNN skips the tiles beyond the lengths, so the two calls cost about one). The frame-causal rule
cannot be given to cuDNN without an `[N, N]` bias, and cuDNN takes only fp16/bf16: those cases run the blockwise
backend instead (logged once).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from pyramid_jax.layers.attention_blockwise import blockwise_attention
from pyramid_jax.layers.attention_fallback import log_once, static_array

# kernel(q, k, v, query_lengths [B], key_lengths [B], scale) -> [B, N, H, d]; rows past a query length are ignored
LengthKernel = Callable[..., jax.Array]


def _cudnn_kernel(q, k, v, q_len, kv_len, scale):
    return jax.nn.dot_product_attention(q, k, v, scale=scale, query_seq_lengths=q_len,
                                        key_value_seq_lengths=kv_len, implementation="cudnn")


def fallback_reason(q, mask) -> str | None:
    """Why cuDNN cannot run this call exactly, or None when it can."""
    if q.dtype not in (jnp.float16, jnp.bfloat16):
        return f"cuDNN attention takes fp16/bf16, got {q.dtype}"
    if mask.frame is not None:
        frame = static_array(mask.frame)
        if frame is None or (frame != frame.flat[0]).any():
            return "the frame-causal rule has no cuDNN mask form without an [N, N] bias"
    return None


def segment_attention(q, k, v, q_valid, k_valid, scale: float, kernel: LengthKernel) -> jax.Array:
    """Attention where query i attends the keys j with `k_valid[j] == q_valid[i]` (`[B, N]` bool), by one
    length-masked `kernel` call per validity; a query with no such key gives NaN (as the xla path)."""
    out = jnp.full(q.shape, jnp.nan, q.dtype)
    take = lambda x, order: jnp.take_along_axis(x, order[:, :, None, None], axis=1)  # noqa: E731
    for segment in (True, False):
        q_in, k_in = q_valid == segment, k_valid == segment
        q_order, k_order = jnp.argsort(~q_in, axis=1, stable=True), jnp.argsort(~k_in, axis=1, stable=True)
        q_len, kv_len = q_in.sum(1).astype(jnp.int32), k_in.sum(1).astype(jnp.int32)
        part = kernel(take(q, q_order), take(k, k_order), take(v, k_order), q_len, kv_len, scale)
        part = take(part, jnp.argsort(q_order, axis=1))
        out = jnp.where((q_in & (kv_len > 0)[:, None])[..., None, None], part, out)
    return out


def cudnn_attention(q, k, v, mask, scale: float, bias=None, *, kernel: LengthKernel = _cudnn_kernel):
    """The `attention()` backend for q, k, v `[B, N, H, d]`."""
    if bias is not None:
        raise ValueError("attention backend 'cudnn' takes no logit bias; use backend 'xla' for biased attention")
    reason = fallback_reason(q, mask)
    if reason is not None:
        log_once(f"{reason}: the blockwise backend runs instead of cudnn")
        return blockwise_attention(q, k, v, mask, scale)
    b, n = q.shape[:2]
    k_valid = jnp.broadcast_to(mask.valid, (b, n))
    q_valid = k_valid if mask.query_valid is None else jnp.broadcast_to(mask.query_valid, (b, n))
    return segment_attention(q, k, v, q_valid, k_valid, scale, kernel)

