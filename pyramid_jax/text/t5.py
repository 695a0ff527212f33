"""T5 v1.1 encoder stack (`T5EncoderModel`) as an NNX module."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pyramid_jax.layers.attention import TokenMask
from pyramid_jax.text.config import T5EncoderConfig
from pyramid_jax.text.layers import MLP, SelfAttention, embedding, norm


def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> np.ndarray:
    """`[N, N]` bidirectional bucket of key j seen from query i, for a static length N.

    Half the buckets are for keys after the query. Within a half, distances below half of it map exactly and
    larger ones to log-spaced bins up to `max_distance`. The log is taken in float32 like torch, so the integer
    cut-offs match transformers' bit for bit.
    """
    relative = np.arange(length)[None, :] - np.arange(length)[:, None]
    half = num_buckets // 2
    exact = half // 2
    distance = np.abs(relative)
    scaled = np.log(np.maximum(distance, 1).astype(np.float32) / np.float32(exact))
    scaled = scaled / np.float32(math.log(max_distance / exact)) * np.float32(half - exact)
    log_bin = np.minimum(exact + scaled.astype(np.int64), half - 1)
    return (relative > 0) * half + np.where(distance < exact, distance, log_bin)


def clamp_fp16(x: jax.Array) -> jax.Array:
    """transformers' T5 guard against fp16 overflow: clip to the fp16 range, 1000 below it once an inf appeared."""
    if x.dtype != jnp.float16:
        return x
    top = jnp.finfo(jnp.float16).max
    limit = jnp.where(jnp.isinf(x).any(), top - 1000, top).astype(x.dtype)
    return jnp.clip(x, -limit, limit)


class T5Block(nnx.Module):
    """x + attn(norm x) with the shared position bias and no 1/sqrt(d) scale, then x + FFN(norm x)."""

    def __init__(self, config: T5EncoderConfig, *, rngs: nnx.Rngs, dtype, param_dtype):
        dim, eps = config.d_model, config.layer_norm_epsilon
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.attention_norm = norm(dim, eps, centered=False, rngs=rngs, param_dtype=param_dtype)
        self.attention = SelfAttention(dim, config.num_heads, config.d_kv, use_bias=False, **kw)
        self.ffn_norm = norm(dim, eps, centered=False, rngs=rngs, param_dtype=param_dtype)
        # transformers keeps `wo` in float32 when loading in fp16 (its output overflows fp16); this also lifts the
        # residual stream to float32 from the first FFN on.
        wo_dtype = jnp.float32 if jnp.dtype(dtype) == jnp.float16 else None
        self.ffn = MLP(dim, config.d_ff, config.activation, gated=config.gated, use_bias=False, wo_dtype=wo_dtype,
                       **kw)

    def __call__(self, x: jax.Array, mask: TokenMask, position_bias: jax.Array) -> jax.Array:
        x = clamp_fp16(x + self.attention(self.attention_norm(x), mask, scale=1.0, bias=position_bias))
        return clamp_fp16(x + self.ffn(self.ffn_norm(x)))


class T5Encoder(nnx.Module):
    """input_ids `[B, N]` and attention_mask `[B, N]` (1 = token, 0 = pad) -> last hidden state `[B, N, d_model]`.

    Pads are masked as keys only, so pad rows get (unused but reference-equal) values, like transformers.
    """

    def __init__(self, config: T5EncoderConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.config = config
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.shared = embedding(config.vocab_size, config.d_model, ("vocab", "embed"), **kw)
        # Only the first block owns a bias table in torch; every block reuses its bias.
        self.relative_attention_bias = embedding(config.relative_attention_num_buckets, config.num_heads,
                                                 (None, "heads"), **kw)
        self.blocks = nnx.List([T5Block(config, **kw) for _ in range(config.num_layers)])
        self.final_layer_norm = norm(config.d_model, config.layer_norm_epsilon, centered=False, rngs=rngs,
                                     param_dtype=param_dtype)

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array) -> jax.Array:
        cfg = self.config
        buckets = relative_position_buckets(input_ids.shape[1], cfg.relative_attention_num_buckets,
                                            cfg.relative_attention_max_distance)
        position_bias = jnp.transpose(self.relative_attention_bias(jnp.asarray(buckets)), (2, 0, 1))  # [H, N, N]
        mask = TokenMask.key_padding(attention_mask.astype(bool))
        x = self.shared(input_ids)
        for block in self.blocks:
            x = block(x, mask, position_bias)
        return self.final_layer_norm(x)
