"""Spatial tiling with overlap and blending (vae_spec.md §4.2-4.4), shared by encode and decode.

Tiles are cut on the input grid with a step of 3/4 tile and processed on their own; each output tile is blended
with its already-blended upper and left neighbours over 1/4 of an output tile, then cropped to its top-left
`keep` x `keep` corner. Tiled output approximates, and differs from, untiled output (as in the reference).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

OVERLAP = 0.25


@dataclasses.dataclass(frozen=True)
class TileGrid:
    """`size` and `step` on the input grid; `blend` and `keep` on the output grid."""

    size: int
    step: int
    blend: int
    keep: int


def check_tile_size(tile_sample_size, factor: int) -> None:
    """Tiles must step and blend on whole latents, so that tiled outputs have the untiled size."""
    multiple = round(factor / OVERLAP)
    if not isinstance(tile_sample_size, (int, np.integer)) or tile_sample_size <= 0 or tile_sample_size % multiple:
        raise ValueError(f"tile_sample_min_size must be a positive multiple of {multiple} (tiles overlap by "
                         f"1/{round(1 / OVERLAP)} and the VAE compresses {factor}x), got {tile_sample_size!r}")


def encode_grid(tile_sample_size: int, factor: int) -> TileGrid:
    """Pixel tiles of `tile_sample_size` whose latent tiles (1/`factor` the size) are blended."""
    latent = int(tile_sample_size / factor)
    blend = int(latent * OVERLAP)
    return TileGrid(tile_sample_size, int(tile_sample_size * (1 - OVERLAP)), blend, latent - blend)


def decode_grid(tile_sample_size: int, factor: int) -> TileGrid:
    """Latent tiles of `tile_sample_size / factor` whose pixel tiles are blended."""
    latent = int(tile_sample_size / factor)
    blend = int(tile_sample_size * OVERLAP)
    return TileGrid(latent, int(latent * (1 - OVERLAP)), blend, tile_sample_size - blend)


def _blend(a: jax.Array, b: jax.Array, extent: int, axis: int) -> jax.Array:
    """Fades the end of `a` into the start of `b` along `axis` over min(extent, both lengths) positions."""
    e = min(a.shape[axis], b.shape[axis], extent)
    if e == 0:
        return b
    shape = [1] * b.ndim
    shape[axis] = e
    ramp = (np.arange(e) / e).reshape(shape)
    tail = jax.lax.slice_in_dim(a, a.shape[axis] - e, a.shape[axis], axis=axis)
    head = jax.lax.slice_in_dim(b, 0, e, axis=axis)
    blended = tail * jnp.asarray(1 - ramp, b.dtype) + head * jnp.asarray(ramp, b.dtype)
    return jnp.concatenate([blended, jax.lax.slice_in_dim(b, e, b.shape[axis], axis=axis)], axis=axis)


def tiled(fn: Callable[[jax.Array], jax.Array], x: jax.Array, grid: TileGrid) -> jax.Array:
    """`fn` applied tile by tile to `x` `[B, T, H, W, C]` and stitched back together."""
    rows = [[fn(x[:, :, i:i + grid.size, j:j + grid.size]) for j in range(0, x.shape[3], grid.step)]
            for i in range(0, x.shape[2], grid.step)]
    stitched = []
    for i, row in enumerate(rows):
        for j in range(len(row)):
            if i > 0:
                row[j] = _blend(rows[i - 1][j], row[j], grid.blend, axis=2)
            if j > 0:
                row[j] = _blend(row[j - 1], row[j], grid.blend, axis=3)
        stitched.append(jnp.concatenate([tile[:, :, :grid.keep, :grid.keep] for tile in row], axis=3))
    return jnp.concatenate(stitched, axis=2)
