"""MMDiT patch embedding: 2x2 conv patches plus a centre-cropped 2-D sincos grid (dit_spec.md §4.3 step 2, §4.4).

The sincos grid (`pos_embed`, G x G cells) is cropped around its centre to the current clip's patch grid, so
every resolution uses the same central positions; lower-resolution condition clips get that crop bilinearly
resized (or, with `interp_condition_pos=False`, their own smaller centred crop).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pyramid_jax.dit.tokens import ClipGrid, StageLayout, linear_taps
from pyramid_jax.layers.buffer import Buffer


def sincos_axis(grid_size: int, dim: int, base_size: int) -> np.ndarray:
    """`[G, dim]` float32 `[sin(u*w) | cos(u*w)]` at u_i = i / (G / base), w_k = 10000^(-k / (dim/2)).

    Coordinates are float32 and angles float64, rounded to float32 at the end, like the reference's numpy code.
    """
    coords = np.arange(grid_size, dtype=np.float32) / np.float32(grid_size / base_size)
    omega = 1.0 / 10000.0 ** (np.arange(dim // 2, dtype=np.float64) / (dim // 2))
    angles = coords.astype(np.float64)[:, None] * omega[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)


def sincos_pos_embed(grid_size: int, dim: int, base_size: int) -> jax.Array:
    """The `[1, G*G, D]` table of torch's `pos_embed.pos_embed` buffer: cell (y, x) at index y*G + x holds
    `[x embedding | y embedding]` (the column coordinate first), each `sincos_axis(G, D/2, base)`.

    Only the `[G, D/2]` axis table is computed host-side; tiling it is a traced op, so an abstract model
    (`nnx.eval_shape`) never materialises the release-size table.
    """
    axis = jnp.asarray(sincos_axis(grid_size, dim // 2, base_size))
    half = (grid_size, grid_size, dim // 2)
    grid = jnp.concatenate([jnp.broadcast_to(axis[None, :, :], half), jnp.broadcast_to(axis[:, None, :], half)], -1)
    return grid.reshape(1, grid_size * grid_size, dim)


def centre_crop(table: jax.Array, grid: ClipGrid) -> jax.Array:
    """The centred `[h, w, D]` window of a `[G, G, D]` table."""
    size = table.shape[0]
    top, left = (size - grid.height) // 2, (size - grid.width) // 2
    return table[top:top + grid.height, left:left + grid.width]


def resize_bilinear(image: jax.Array, height: int, width: int) -> jax.Array:
    """`[h, w, D]` -> `[height, width, D]` as torch bilinear (align_corners=False, no antialias), in float32.

    Width is interpolated first, then height, like torch's kernel; the result keeps the input dtype.
    """
    x = image.astype(jnp.float32)
    for axis, samples in ((1, width), (0, height)):
        if x.shape[axis] == samples:
            continue
        lo, hi, lam = linear_taps(x.shape[axis], samples)
        shape = [1] * x.ndim
        shape[axis] = samples
        lam = jnp.asarray(lam.reshape(shape))
        x = (1 - lam) * jnp.take(x, lo, axis=axis) + lam * jnp.take(x, hi, axis=axis)
    return x.astype(image.dtype)


class PatchEmbed(nnx.Module):
    """Conv2d(C -> D, kernel p, stride p) on every frame, plus the clip's slice of the sincos grid.

    `patch_size` must match the clips' token grids (`ClipGrid`, 2x2 latent pixels per token).

    `pos_embed` is a `Buffer` holding the reference's `[1, G*G, D]` table (converted from the checkpoint, or
    computed by `sincos_pos_embed` for a fresh model).
    """

    def __init__(self, in_channels: int, dim: int, patch_size: int, pos_embed_max_size: int, base_size: int, *,
                 interp_condition_pos: bool, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.interp_condition_pos = interp_condition_pos
        self.pos_embed_max_size = pos_embed_max_size
        # Xavier on the flattened [D, C*2*2] view, as the reference initialises its conv.
        init = nnx.initializers.variance_scaling(1.0, "fan_avg", "uniform", in_axis=(0, 1, 2), out_axis=3)
        self.proj = nnx.Conv(in_channels, dim, (patch_size, patch_size), strides=patch_size, padding="VALID",
                             dtype=dtype, param_dtype=param_dtype, rngs=rngs,
                             kernel_init=nnx.with_metadata(init, logical_axes=(None, None, None, "embed")),
                             bias_init=nnx.with_metadata(nnx.initializers.zeros_init(), logical_axes=("embed",)))
        self.pos_embed = Buffer(sincos_pos_embed(pos_embed_max_size, dim, base_size).astype(param_dtype),
                                logical_axes=(None, None, "embed"))

    def __call__(self, clips: Sequence[jax.Array], layout: StageLayout) -> jax.Array:
        """One stage's clips `[B, T, H, W, C]` -> tokens `[B, N, D]`, clip by clip, frame by frame, row-major."""
        size, current = self.pos_embed_max_size, layout.current
        if current.height > size or current.width > size:
            raise ValueError(f"current clip latent {2 * current.height}x{2 * current.width} gives a "
                             f"{current.height}x{current.width} patch grid; pos_embed_max_size {size} allows at "
                             f"most {size}x{size} (latent {2 * size}x{2 * size})")
        table = self.pos_embed[...].reshape(size, size, -1)
        tokens = []
        for clip, grid in zip(clips, layout.clips):
            b, t = clip.shape[:2]
            x = self.proj(clip.reshape(b * t, *clip.shape[2:]))
            x = (x + self._clip_pos_embed(table, grid, current)).astype(x.dtype)
            tokens.append(x.reshape(b, grid.num_tokens, -1))
        return jnp.concatenate(tokens, axis=1)

    def _clip_pos_embed(self, table: jax.Array, grid: ClipGrid, current: ClipGrid) -> jax.Array:
        """`[h, w, D]` positions of a clip: the current crop resized to the clip, or the clip's own centred crop."""
        if not self.interp_condition_pos:
            return centre_crop(table, grid)
        return resize_bilinear(centre_crop(table, current), grid.height, grid.width)
