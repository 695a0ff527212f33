"""Per-frame GroupNorm, the causal resnet block and the mid block with per-frame attention (vae_spec.md §3.2-3.4)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.layers.linear import dense
from pyramid_jax.vae.conv import CHANNELS, CausalConv3d, TimeCache

NORM_EPS = 1e-6


class GroupNorm(nnx.Module):
    """GroupNorm of each frame of `[B, T, H, W, C]` on its own: statistics over (H, W, C/G), never across frames.

    Frames never mix, which keeps the model causal and streaming exact. Statistics run in float32, two-pass.
    """

    def __init__(self, groups: int, channels: int, *, param_dtype=jnp.float32):
        self.groups = groups
        self.scale = nnx.Param(jnp.ones((channels,), param_dtype), logical_axes=(CHANNELS,))
        self.bias = nnx.Param(jnp.zeros((channels,), param_dtype), logical_axes=(CHANNELS,))

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, h, w, c = x.shape
        g = x.astype(jnp.float32).reshape(b, t, h, w, self.groups, c // self.groups)
        mean = jnp.mean(g, axis=(2, 3, 5), keepdims=True)
        var = jnp.mean(jnp.square(g - mean), axis=(2, 3, 5), keepdims=True)
        y = ((g - mean) * jax.lax.rsqrt(var + NORM_EPS)).reshape(x.shape)
        return (y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)).astype(x.dtype)


class ResnetBlock(nnx.Module):
    """x + conv2(silu(norm2(conv1(silu(norm1(x)))))), with a 1x1x1 conv shortcut when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, *, rngs: nnx.Rngs, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.norm1 = GroupNorm(groups, in_channels, param_dtype=param_dtype)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3, **kw)
        self.norm2 = GroupNorm(groups, out_channels, param_dtype=param_dtype)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3, **kw)
        self.conv_shortcut = CausalConv3d(in_channels, out_channels, 1, **kw) if in_channels != out_channels else None

    def __call__(self, x: jax.Array, cache: TimeCache | None = None) -> jax.Array:
        h = self.conv1(nnx.silu(self.norm1(x)), cache)
        h = self.conv2(nnx.silu(self.norm2(h)), cache)
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class FrameAttention(nnx.Module):
    """Single-head self-attention among the H*W positions of each frame (nothing attends across time), residual."""

    def __init__(self, channels: int, groups: int, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.group_norm = GroupNorm(groups, channels, param_dtype=param_dtype)
        self.to_q = dense(channels, channels, (None, CHANNELS), **kw)
        self.to_k = dense(channels, channels, (None, CHANNELS), **kw)
        self.to_v = dense(channels, channels, (None, CHANNELS), **kw)
        self.to_out = dense(channels, channels, (None, CHANNELS), **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, h, w, c = x.shape
        tokens = self.group_norm(x).reshape(b * t, h * w, 1, c)  # one head of size C; token = row * W + column
        out = jax.nn.dot_product_attention(self.to_q(tokens), self.to_k(tokens), self.to_v(tokens))
        return x + self.to_out(out.reshape(x.shape))


class MidBlock(nnx.Module):
    """resnet -> per-frame attention -> resnet at the lowest resolution."""

    def __init__(self, channels: int, groups: int, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.resnets = nnx.List([ResnetBlock(channels, channels, groups, **kw) for _ in range(2)])
        self.attention = FrameAttention(channels, groups, **kw)

    def __call__(self, x: jax.Array, cache: TimeCache | None = None) -> jax.Array:
        x = self.resnets[0](x, cache)
        return self.resnets[1](self.attention(x), cache)
