"""The causal encoder: pixels `[B, T, H, W, 3]` -> moments `[B, 1 + (T-1)/8, H/8, W/8, 2z]` (vae_spec.md §3.5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.vae.blocks import GroupNorm, MidBlock, ResnetBlock
from pyramid_jax.vae.config import VAEConfig
from pyramid_jax.vae.conv import CausalConv3d, TimeCache


class DownBlock(nnx.Module):
    """Resnets, then a stride-(1, 2, 2) conv halving H and W, then a stride-(2, 1, 1) conv taking T to ceil(T/2)."""

    def __init__(self, in_channels: int, out_channels: int, layers: int, spatial_down: bool, temporal_down: bool,
                 groups: int, **kw):
        self.resnets = nnx.List([ResnetBlock(in_channels if j == 0 else out_channels, out_channels, groups, **kw)
                                 for j in range(layers)])
        self.spatial_downsample = CausalConv3d(out_channels, out_channels, 3, (1, 2, 2), **kw) if spatial_down else None
        self.temporal_downsample = (CausalConv3d(out_channels, out_channels, 3, (2, 1, 1), **kw)
                                    if temporal_down else None)

    def __call__(self, x: jax.Array, cache: TimeCache | None = None) -> jax.Array:
        for resnet in self.resnets:
            x = resnet(x, cache)
        for sampler in (self.spatial_downsample, self.temporal_downsample):
            if sampler is not None:
                x = sampler(x, cache)
        return x


class Encoder(nnx.Module):
    """conv_in -> down blocks -> mid block -> GroupNorm, SiLU, conv_out to the 2z moment channels."""

    def __init__(self, config: VAEConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        widths, groups = config.encoder_block_out_channels, config.encoder_norm_num_groups
        self.conv_in = CausalConv3d(config.encoder_in_channels, widths[0], 3, **kw)
        self.down_blocks = nnx.List([
            DownBlock(widths[max(i - 1, 0)], widths[i], config.encoder_layers_per_block[i],
                      config.encoder_spatial_down_sample[i], config.encoder_temporal_down_sample[i], groups, **kw)
            for i in range(len(widths))])
        self.mid_block = MidBlock(widths[-1], groups, **kw)
        self.conv_norm_out = GroupNorm(groups, widths[-1], param_dtype=param_dtype)
        self.conv_out = CausalConv3d(widths[-1], 2 * config.encoder_out_channels, 3, **kw)

    def __call__(self, x: jax.Array, cache: TimeCache | None = None) -> jax.Array:
        h = self.conv_in(x, cache)
        for block in self.down_blocks:
            h = block(h, cache)
        h = self.mid_block(h, cache)
        return self.conv_out(nnx.silu(self.conv_norm_out(h)), cache)
