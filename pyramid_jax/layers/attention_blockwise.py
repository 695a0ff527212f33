"""Blockwise (flash-style) attention in pure JAX: an online softmax over key blocks for each query block.

The mask is generated per `[q_block, k_block]` tile from the `TokenMask` vectors, and the backward pass
(`custom_vjp`) recomputes the tiles from the saved log-sum-exp, so forward and backward hold
O(N * block) floats, never an `[N, N]` score tensor. Tiles that the frame-causal rule masks out entirely are
skipped. A query with no allowed key gives NaN, as the xla path's softmax over all -inf does (its gradient is
zero here instead of NaN).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

Q_BLOCK = 256
K_BLOCK = 512
_KEY_PAD, _QUERY_PAD = -1, -2  # segment ids of the internal padding: a pad key matches no query


def _split(x: jax.Array, block: int, fill) -> jax.Array:
    """`[B, N, ...]` -> `[N_pad / block, B, block, ...]`, padded along N with `fill`."""
    pad = -x.shape[1] % block
    x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2), constant_values=fill)
    return jnp.moveaxis(x.reshape(x.shape[0], -1, block, *x.shape[2:]), 1, 0)


def balanced_block(block: int, n: int) -> int:
    """The tile size (a multiple of 8) covering n tokens with the fewest tiles of at most `block` (rounded up to 8)
    and the least padding: 640 tokens take 2 tiles of 320, not 2 of 512."""
    tiles = -(-n // block)
    return (-(-n // tiles) + 7) // 8 * 8


def _tile_mask(q_seg, q_frame, k_seg, k_frame):
    """`[B, 1, q, k]` bool tile: same segment, and the key's frame not after the query's."""
    return ((q_seg[:, :, None] == k_seg[:, None, :]) & (q_frame[:, :, None] >= k_frame[:, None, :]))[:, None]


def _tile_live(q_frame, k_frame):
    """False when the frame rule masks the whole tile (every key frame after every query frame)."""
    return jnp.min(k_frame) <= jnp.max(q_frame)


def _scores(q, k, scale):
    return jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * scale


def _forward(q, k, v, q_seg, q_frame, k_seg, k_frame, scale, q_block, k_block):
    """Blocked inputs in, (out `[nq, B, q, H, d]` with empty rows 0, lse `[nq, B, H, q]`, empty `[nq, B, H, q]`)."""
    _, b, kb, h, d = k.shape

    def one_query_block(args):
        qi, qs, qf = args

        def step(carry, kv):
            kj, vj, ks, kf = kv

            def update(carry):
                m, l, acc = carry
                s = jnp.where(_tile_mask(qs, qf, ks, kf), _scores(qi, kj, scale), -jnp.inf)
                m_new = jnp.maximum(m, s.max(-1))
                m_safe = jnp.where(jnp.isneginf(m_new), 0.0, m_new)
                p = jnp.exp(s - m_safe[..., None])
                correction = jnp.exp(m - m_safe)
                l = l * correction + p.sum(-1)
                pv = jnp.einsum("bhqk,bkhd->bqhd", p.astype(vj.dtype), vj, preferred_element_type=jnp.float32)
                acc = acc * jnp.moveaxis(correction, 1, 2)[..., None] + pv
                return m_new, l, acc

            return jax.lax.cond(_tile_live(qf, kf), update, lambda c: c, carry), None

        init = (jnp.full((b, h, q_block), -jnp.inf, jnp.float32), jnp.zeros((b, h, q_block), jnp.float32),
                jnp.zeros((b, q_block, h, v.shape[-1]), jnp.float32))
        (m, l, acc), _ = jax.lax.scan(step, init, (k, v, k_seg, k_frame))
        empty = l == 0
        out = acc / jnp.moveaxis(jnp.where(empty, 1.0, l), 1, 2)[..., None]
        return out, m + jnp.log(jnp.where(empty, 1.0, l)), empty

    return jax.lax.map(one_query_block, (q, q_seg, q_frame))


def _backward(q, k, v, q_seg, q_frame, k_seg, k_frame, out, lse, dout, scale):
    """Gradients of the blocked inputs, recomputing each tile's probabilities from `lse`."""
    delta = jnp.einsum("nbqhd,nbqhd->nbhq", dout.astype(jnp.float32), out)

    def one_key_block(dq, kv):
        kj, vj, ks, kf = kv

        def step(carry, qargs):
            dk, dv = carry
            qi, qs, qf, lse_i, delta_i, do_i = qargs

            def grads(_):
                mask = _tile_mask(qs, qf, ks, kf)
                p = jnp.where(mask, jnp.exp(_scores(qi, kj, scale) - lse_i[..., None]), 0.0)
                dv_t = jnp.einsum("bhqk,bqhd->bkhd", p, do_i, preferred_element_type=jnp.float32)
                dp = jnp.einsum("bqhd,bkhd->bhqk", do_i, vj, preferred_element_type=jnp.float32)
                ds = p * (dp - delta_i[..., None]) * scale
                dq_t = jnp.einsum("bhqk,bkhd->bqhd", ds, kj, preferred_element_type=jnp.float32)
                dk_t = jnp.einsum("bhqk,bqhd->bkhd", ds, qi, preferred_element_type=jnp.float32)
                return dq_t, dk_t, dv_t

            def skip(_):
                return (jnp.zeros(qi.shape, jnp.float32), jnp.zeros(kj.shape, jnp.float32),
                        jnp.zeros(vj.shape, jnp.float32))

            dq_t, dk_t, dv_t = jax.lax.cond(_tile_live(qf, kf), grads, skip, None)
            return (dk + dk_t, dv + dv_t), dq_t

        init = (jnp.zeros(kj.shape, jnp.float32), jnp.zeros(vj.shape, jnp.float32))
        (dk, dv), dq_parts = jax.lax.scan(step, init, (q, q_seg, q_frame, lse, delta, dout))
        return dq + dq_parts, (dk, dv)

    dq, (dk, dv) = jax.lax.scan(one_key_block, jnp.zeros(q.shape, jnp.float32), (k, v, k_seg, k_frame))
    return dq, dk, dv


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9))
def _blocked(q, k, v, q_seg, q_frame, k_seg, k_frame, scale, q_block, k_block):
    out, _, empty = _forward(q, k, v, q_seg, q_frame, k_seg, k_frame, scale, q_block, k_block)
    return jnp.where(jnp.moveaxis(empty, 2, 3)[..., None], jnp.nan, out)


def _blocked_fwd(q, k, v, q_seg, q_frame, k_seg, k_frame, scale, q_block, k_block):
    out, lse, empty = _forward(q, k, v, q_seg, q_frame, k_seg, k_frame, scale, q_block, k_block)
    residuals = (q, k, v, q_seg, q_frame, k_seg, k_frame, out, lse)
    return jnp.where(jnp.moveaxis(empty, 2, 3)[..., None], jnp.nan, out), residuals


def _blocked_bwd(scale, q_block, k_block, residuals, dout):
    q, k, v, q_seg, q_frame, k_seg, k_frame, out, lse = residuals
    dq, dk, dv = _backward(q, k, v, q_seg, q_frame, k_seg, k_frame, out, lse, dout, scale)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None, None, None, None


_blocked.defvjp(_blocked_fwd, _blocked_bwd)


def blockwise_attention(q, k, v, mask, scale: float, bias=None, *, q_block: int = Q_BLOCK,
                        k_block: int = K_BLOCK):
    """The `attention()` backend: q `[B, M, H, d]` (the last M tokens' queries), k, v `[B, N, H, d]` and a
    `TokenMask`; token counts need not divide the blocks (they are padded internally with keys that match no
    query)."""
    if bias is not None:
        raise ValueError("attention backend 'blockwise' takes no logit bias; use backend 'xla' for biased attention")
    b, m = q.shape[:2]
    n = k.shape[1]
    q_block, k_block = balanced_block(q_block, m), balanced_block(k_block, n)
    k_valid = jnp.broadcast_to(mask.valid, (b, n)).astype(jnp.int32)
    q_valid = k_valid if mask.query_valid is None else jnp.broadcast_to(mask.query_valid, (b, n)).astype(jnp.int32)
    frame = jnp.zeros(n, jnp.int32) if mask.frame is None else mask.frame.astype(jnp.int32)
    frames = jnp.broadcast_to(frame, (1, n))
    blocked = _blocked(_split(q, q_block, 0), _split(k, k_block, 0), _split(v, k_block, 0),
                       _split(q_valid[:, n - m:], q_block, _QUERY_PAD), _split(frames[:, n - m:], q_block, 0),
                       _split(k_valid, k_block, _KEY_PAD), _split(frames, k_block, 0), scale, q_block, k_block)
    out = jnp.moveaxis(blocked, 0, 1).reshape(b, -1, *blocked.shape[3:])[:, :m]
    return out.astype(q.dtype)
