"""Spatial pyramid operations on latents `[B, T, H, W, C]`: 2x down/upsampling and 2x2 block noise."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def downsample_2x(x: jax.Array) -> jax.Array:
    """`[B, T, H, W, C]` -> `[B, T, H/2, W/2, C]`: the mean of each 2x2 cell.

    This is bilinear interpolation to exactly half size (align_corners=False), summed in the reference kernel's
    order in float32 so that results are bit-identical to it; returned in `x`'s dtype.
    """
    y = x.astype(jnp.float32)
    total = ((y[:, :, 0::2, 0::2] + y[:, :, 0::2, 1::2]) + y[:, :, 1::2, 0::2]) + y[:, :, 1::2, 1::2]
    return (total * 0.25).astype(x.dtype)


def upsample_nearest_2x(x: jax.Array) -> jax.Array:
    """`[B, T, H, W, C]` -> `[B, T, 2H, 2W, C]`, each value copied into a 2x2 block."""
    return jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)


def latent_pyramid(x: jax.Array, num_stages: int) -> list[jax.Array]:
    """Clean latents at every stage's resolution, lowest first: `[down^(S-1)(x), ..., down(x), x]`."""
    levels = [x]
    for _ in range(num_stages - 1):
        levels.append(downsample_2x(levels[-1]))
    return levels[::-1]


def lowest_stage_noise(noise: jax.Array, num_stages: int) -> jax.Array:
    """Full-resolution unit Gaussian noise brought to stage 0: halved `S - 1` times, each time times 2.

    The 2x2 mean of i.i.d. unit noise has variance 1/4, so x2 keeps it i.i.d. unit Gaussian.
    """
    for _ in range(num_stages - 1):
        noise = downsample_2x(noise) * 2
    return noise


def color_block_noise(z: jax.Array, gamma: float) -> jax.Array:
    """Maps i.i.d. unit noise `[B, T, H, W, C]` to 2x2-block noise with covariance `(1 + g) I - g 11^T` per block.

    Uses the symmetric square root of that covariance: `sqrt(1 + g)` on the within-block deviations from the
    block mean and `sqrt(1 - 3g)` on the block mean (0 for g = 1/3: block sums vanish, the noise is purely
    high-frequency).
    """
    b, t, h, w, c = z.shape
    blocks = z.reshape(b, t, h // 2, 2, w // 2, 2, c)
    mean = blocks.mean(axis=(3, 5), keepdims=True)
    colored = math.sqrt(1 + gamma) * (blocks - mean) + math.sqrt(max(1 - 3 * gamma, 0.0)) * mean
    return colored.reshape(z.shape)

