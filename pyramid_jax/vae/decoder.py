"""The causal decoder: latents `[B, L, h, w, z]` -> pixels `[B, 8L - 7, 8h, 8w, 3]` (vae_spec.md §3.6)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.vae.blocks import GroupNorm, MidBlock, ResnetBlock
from pyramid_jax.vae.config import VAEConfig
from pyramid_jax.vae.conv import CausalConv3d, TimeCache


def depth_to_space(y: jax.Array) -> jax.Array:
    """`[B, T, H, W, 4C]` -> `[B, T, 2H, 2W, C]`; channel 4c + 2p + q goes to pixel (2h + p, 2w + q)."""
    b, t, h, w, c4 = y.shape
    y = y.reshape(b, t, h, w, c4 // 4, 2, 2).transpose(0, 1, 2, 5, 3, 6, 4)
    return y.reshape(b, t, 2 * h, 2 * w, c4 // 4)


def depth_to_time(y: jax.Array) -> jax.Array:
    """`[B, T, H, W, 2C]` -> `[B, 2T, H, W, C]`; channel 2c + p goes to frame 2t + p."""
    b, t, h, w, c2 = y.shape
    return y.reshape(b, t, h, w, c2 // 2, 2).transpose(0, 1, 5, 2, 3, 4).reshape(b, 2 * t, h, w, c2 // 2)


class UpBlock(nnx.Module):
    """Resnets, then a learned 2x depth-to-space upsample, then a learned 2x depth-to-time upsample.

    The time upsample drops its first output frame when `is_init_image` (the clip starts here), so L frames
    become 2L - 1: latent frame 0 stands for one image frame.
    """

    def __init__(self, in_channels: int, out_channels: int, layers: int, spatial_up: bool, temporal_up: bool,
                 groups: int, **kw):
        self.resnets = nnx.List([ResnetBlock(in_channels if j == 0 else out_channels, out_channels, groups, **kw)
                                 for j in range(layers)])
        self.spatial_upsample = CausalConv3d(out_channels, 4 * out_channels, 3, **kw) if spatial_up else None
        self.temporal_upsample = CausalConv3d(out_channels, 2 * out_channels, 3, **kw) if temporal_up else None

    def __call__(self, x: jax.Array, cache: TimeCache | None, is_init_image: bool) -> jax.Array:
        for resnet in self.resnets:
            x = resnet(x, cache)
        if self.spatial_upsample is not None:
            x = depth_to_space(self.spatial_upsample(x, cache))
        if self.temporal_upsample is not None:
            x = depth_to_time(self.temporal_upsample(x, cache))
            if is_init_image:
                x = x[:, 1:]
        return x


class Decoder(nnx.Module):
    """conv_in -> mid block -> up blocks (widths reversed) -> GroupNorm, SiLU, conv_out to pixels (unclamped)."""

    def __init__(self, config: VAEConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        widths, groups = config.decoder_block_out_channels[::-1], config.decoder_norm_num_groups
        self.conv_in = CausalConv3d(config.decoder_in_channels, widths[0], 3, **kw)
        self.mid_block = MidBlock(widths[0], groups, **kw)
        self.up_blocks = nnx.List([
            UpBlock(widths[max(i - 1, 0)], widths[i], config.decoder_layers_per_block[i],
                    config.decoder_spatial_up_sample[i], config.decoder_temporal_up_sample[i], groups, **kw)
            for i in range(len(widths))])
        self.conv_norm_out = GroupNorm(groups, widths[-1], param_dtype=param_dtype)
        self.conv_out = CausalConv3d(widths[-1], config.decoder_out_channels, 3, **kw)

    def __call__(self, z: jax.Array, cache: TimeCache | None = None, is_init_image: bool = True) -> jax.Array:
        h = self.mid_block(self.conv_in(z, cache), cache)
        for block in self.up_blocks:
            h = block(h, cache, is_init_image)
        return self.conv_out(nnx.silu(self.conv_norm_out(h)), cache)
