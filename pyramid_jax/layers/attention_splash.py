"""TPU attention backend: the Pallas splash-attention kernel driven by the `TokenMask` vectors.

Padding goes in as segment ids (pad sees only pad). The frame-causal rule becomes a block-sparse computable mask:
with tokens ordered by frame (a static permutation; attention is permutation-equivariant), query i may attend
key j iff j < end of i's frame group, so the kernel gets one int per query (`q_sequence`), never an `[N, N]`
array, and skips the tiles above the block staircase. Frame ids known only at run time (bucketed programs) get
the same mask with every tile computed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as splash_mask

from pyramid_jax.layers.attention_fallback import static_array

BLOCK = 512  # kernel tile; sequences are padded to a multiple of it (of 128 when shorter)
_PAD_SEGMENT = -1  # internal padding tokens: a segment of their own


class FrameCausalMask(splash_mask._ComputableMask):
    """Key j is allowed for query i iff j < `frame_end[i]` (tokens sorted by frame)."""

    def __init__(self, frame_end: np.ndarray):
        super().__init__((len(frame_end), len(frame_end)), lambda q_end, kv_ids: kv_ids < q_end)
        self.q_sequence = frame_end.astype(np.int32)

    def __eq__(self, other: object):
        return isinstance(other, FrameCausalMask) and np.array_equal(self.q_sequence, other.q_sequence)

    def __hash__(self):
        return hash((type(self), self.q_sequence.tobytes()))


def _kernel(frame_end: np.ndarray, heads: int, block: int, interpret: bool):
    mask = splash_mask.MultiHeadMask([FrameCausalMask(frame_end)] * heads)
    sizes = splash.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block, block_q_dkv=block,
                              block_kv_dkv=block, block_kv_dkv_compute=block, block_q_dq=block, block_kv_dq=block)
    return splash.make_splash_mha_single_device(mask, block_sizes=sizes, interpret=interpret)


def _runtime_kernel(frame_end: jax.Array, heads: int, block: int, interpret: bool):
    """A kernel for frame ends known only at run time: built from a template whose every tile is partial (each
    tile holds a row with no key and a row with all keys), so no tile is skipped or taken whole, and the mask
    function reads the runtime `frame_end` instead of the template's."""
    n_pad = frame_end.shape[0]
    template = np.full(n_pad, n_pad, np.int32)
    template[::block] = 0
    kernel = _kernel(template, heads, block, interpret)
    ends = lambda info: None if info is None else info._replace(q_sequence=frame_end)  # noqa: E731
    return splash.SplashAttentionKernel(ends(kernel.fwd_mask_info), ends(kernel.dq_mask_info),
                                        ends(kernel.dkv_mask_info), **kernel.kwargs)


def splash_attention(q, k, v, mask, scale: float, bias=None, *, interpret: bool = False, block: int = BLOCK):
    """The `attention()` backend for q, k, v `[B, N, H, d]`; `interpret` runs the kernel in Pallas interpret mode
    (any platform, for tests); `block` (a multiple of 128) is the largest tile."""
    if bias is not None:
        raise ValueError("attention backend 'splash' takes no logit bias; use backend 'xla' for biased attention")
    b, n, h, _ = q.shape
    block = min(block, -(-n // 128) * 128)
    n_pad = -(-n // block) * block
    frame = np.zeros(n, np.int32) if mask.frame is None else static_array(mask.frame)
    if frame is not None:  # static: the kernel skips the tiles the frame rule masks whole
        order = np.argsort(frame, kind="stable")
        ends = np.searchsorted(frame[order], frame[order], side="right")  # end of each token's frame group
        kernel = _kernel(np.concatenate([ends, np.full(n_pad - n, n_pad)]).astype(np.int32), h, block, interpret)
    else:
        frame = mask.frame.astype(jnp.int32)
        order = jnp.argsort(frame, stable=True)
        ends = jnp.searchsorted(frame[order], frame[order], side="right").astype(jnp.int32)
        kernel = _runtime_kernel(jnp.concatenate([ends, jnp.full(n_pad - n, n_pad, jnp.int32)]), h, block, interpret)

    k_valid = jnp.broadcast_to(mask.valid, (b, n))
    q_valid = k_valid if mask.query_valid is None else jnp.broadcast_to(mask.query_valid, (b, n))

    def prepare(x, fill):  # sort by frame, pad to the tile multiple
        x = jnp.take(x, order, axis=1)
        return jnp.pad(x, [(0, 0), (0, n_pad - n)] + [(0, 0)] * (x.ndim - 2), constant_values=fill)

    q_seg, kv_seg = (prepare(x.astype(jnp.int32), _PAD_SEGMENT) for x in (q_valid, k_valid))
    heads_first = lambda x: jnp.moveaxis(prepare(x, 0), 2, 1)  # noqa: E731  [B, H, N_pad, d]
    out = jax.vmap(lambda q, k, v, qs, ks: kernel(q, k, v, segment_ids=splash.SegmentIds(qs, ks)))(
        heads_first(q * jnp.asarray(scale, q.dtype)), heads_first(k), heads_first(v), q_seg, kv_seg)
    out = jnp.moveaxis(out, 1, 2)[:, jnp.argsort(order)]
    return jnp.where(_has_key(q_valid, k_valid, frame)[..., None, None], out, jnp.nan)


def _has_key(q_valid, k_valid, frame):
    """`[B, N]`: whether query i has any allowed key (the kernel's softmax is undefined where it has none)."""
    first = jnp.where(k_valid[:, None, :] == jnp.asarray([False, True])[None, :, None], frame, np.iinfo(np.int32).max)
    first = first.min(-1)  # [B, 2]: earliest key frame of each validity
    return jnp.take_along_axis(first, q_valid.astype(jnp.int32), axis=1) <= frame
