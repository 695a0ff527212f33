"""Exact attention by query chunks: each chunk of rows takes the ordinary dense softmax over the keys it may see.

It computes what the xla path computes, row by row, but a `lax.map` over query chunks keeps each `[B, H, chunk, N]`
score block in cache, where the xla path writes the whole `[B, H, N, N]` tensor to memory and reads it back. On
this project's 2-core CPU that memory traffic, not the matmul arithmetic, bounds attention. For the same reason
the softmax divides the `[chunk, d]` output by the row sums, not the `[chunk, N]` weights, and the scale goes on
the queries (one pass fewer over the scores each; ~8% of a call at the sampler's last unit).

With a mask's `key_limits` (history clips that do not see the later clips), each run of rows takes only the keys
before its limit: the later keys are frames it may not see. That skips the frame-masked part of the work. At the
sampler's last 640x384 unit (B=2, H=4, 2,348 tokens, runtime frame ids) one call takes 107 ms dense and 48 ms with
the current clip alone skipped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pyramid_jax.layers.attention_blockwise import balanced_block

CHUNK = 128


def _rows(q, k, v, q_valid, q_frame, k_valid, k_frame, scale: float, chunk: int):
    """Attention of the queries `q [B, H, n, d]` over the keys and values `[B, H, m, d]` (heads-major, so that no
    chunk transposes), by chunks of query rows; returns `[B, H, n, d]`.

    Validity `[B, n]` / `[B, m]`, frames `[n]` / `[m]` int32 (None: no frame rule). A query may attend a key of its
    own validity whose frame is not later than its own.
    """
    b, h, n, d = q.shape
    rows = balanced_block(chunk, n)
    pad = -n % rows
    # Pad rows attend at least key 0 (its validity, the largest frame), so that no NaN enters their gradients.
    q = jnp.moveaxis(jnp.pad(q, [(0, 0), (0, 0), (0, pad), (0, 0)]).reshape(b, h, -1, rows, d), 2, 0)
    q_valid = jnp.concatenate([q_valid, jnp.broadcast_to(k_valid[:, :1], (b, pad))], axis=1)
    q_valid = jnp.moveaxis(q_valid.reshape(b, -1, rows), 1, 0)
    if q_frame is not None:
        q_frame = jnp.pad(q_frame, (0, pad), constant_values=jnp.iinfo(jnp.int32).max).reshape(-1, rows)

    def one_chunk(args):
        qi, valid_i, frame_i = args
        allowed = valid_i[:, :, None] == k_valid[:, None, :]
        if frame_i is not None:
            allowed = allowed & (frame_i[:, None] >= k_frame[None, :])[None]
        logits = jnp.einsum("bhqd,bhkd->bhqk", qi * scale, k, preferred_element_type=jnp.float32)
        logits = jnp.where(allowed[:, None], logits, -jnp.inf)
        weights = jnp.exp(logits - jax.lax.stop_gradient(logits.max(-1, keepdims=True)))
        out = jnp.einsum("bhqk,bhkd->bhqd", weights.astype(v.dtype), v, preferred_element_type=jnp.float32)
        return (out / weights.sum(-1, keepdims=True)).astype(v.dtype)

    out = jax.lax.map(one_chunk, (q, q_valid, q_frame))
    return jnp.moveaxis(out, 0, 2).reshape(b, h, -1, d)[:, :, :n]


def chunked_attention(q, k, v, mask, scale: float, bias=None, *, chunk: int = CHUNK):
    """The `attention()` backend: q `[B, M, H, d]` (the last M tokens' queries), k, v `[B, N, H, d]` and a
    `TokenMask`; any token counts."""
    if bias is not None:
        raise ValueError("attention backend 'chunked' takes no logit bias; use backend 'xla' for biased attention")
    b, m = q.shape[:2]
    n = k.shape[1]
    first = n - m
    k_valid = jnp.broadcast_to(mask.valid, (b, n))
    q_valid = (k_valid if mask.query_valid is None else jnp.broadcast_to(mask.query_valid, (b, n)))[:, first:]
    frame = None if mask.frame is None else mask.frame.astype(jnp.int32)
    q_frame = None if frame is None else frame[first:]
    q, k, v = (jnp.swapaxes(x, 1, 2) for x in (q, k, v))
    # runs of query rows (in q's numbering) and the keys they may see: the mask's key limits, then all keys
    limits = mask.key_limits if mask.frame is not None else ()
    runs, start = [], 0
    for q_stop, k_stop in (*limits, (n, n)):
        if q_stop - first > start:
            runs.append((start, q_stop - first, k_stop))
            start = q_stop - first
    out = jnp.concatenate([_rows(q[:, :, lo:hi], k[:, :, :keys], v[:, :, :keys], q_valid[:, lo:hi],
                                 None if q_frame is None else q_frame[lo:hi], k_valid[:, :keys],
                                 None if frame is None else frame[:keys], scale, chunk)
                           for lo, hi, keys in runs], axis=2)
    return jnp.swapaxes(out, 1, 2)
