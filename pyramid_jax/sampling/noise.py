"""The random draws of a generation: each unit's starting noise and its block noise at every stage jump.

A `NoiseSource` maps the index of a generated unit (0 = the first unit the sampler denoises) to its `UnitNoise`.
`KeyNoise` draws from an explicit PRNG key; `RecordedNoise` replays given arrays (e.g. the reference's recorded
draws) so that a run can be compared with another implementation number for number.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pyramid_jax.sampling.pyramid import color_block_noise, lowest_stage_noise


class UnitNoise(NamedTuple):
    """latent: `[B, 1, h0, w0, C]` unit Gaussian noise the unit starts from, at stage-0 resolution.
    block: one `[B, 1, h_k, w_k, C]` block noise per stage jump k = 1..S-1, at stage k's resolution.
    """

    latent: jax.Array
    block: tuple[jax.Array, ...]


class NoiseSource(Protocol):
    def __call__(self, index: int) -> UnitNoise: ...


def stage_shapes(batch: int, latent_height: int, latent_width: int, channels: int, num_stages: int):
    """`[B, 1, h_k, w_k, C]` of one unit at each stage k, lowest resolution first."""
    return tuple((batch, 1, latent_height >> (num_stages - 1 - k), latent_width >> (num_stages - 1 - k), channels)
                 for k in range(num_stages))


@functools.partial(jax.jit, static_argnames=("shapes", "gamma", "dtype"))
def _draw_unit(key, index, *, shapes, gamma, dtype) -> UnitNoise:
    """One unit-Gaussian draw for all of the unit's noise (one sampler in the program compiles fastest)."""
    sizes = [math.prod(s) for s in shapes]
    z = jax.random.normal(jax.random.fold_in(key, index), (sum(sizes),), jnp.float32)
    parts = [p.reshape(s) for p, s in zip(jnp.split(z, np.cumsum(sizes)[:-1]), shapes)]
    return UnitNoise(parts[0].astype(dtype), tuple(color_block_noise(p, gamma).astype(dtype) for p in parts[1:]))


class KeyNoise:
    """Draws unit `i`'s noise from `fold_in(key, i)`: the same seed gives the same first units at any length.

    The starting noise is drawn directly at stage-0 resolution; the reference draws it at full resolution and
    halves it with x2 rescaling, which gives the same distribution (i.i.d. unit Gaussian).
    """

    def __init__(self, key: jax.Array, batch: int, latent_height: int, latent_width: int, channels: int,
                 num_stages: int, gamma: float, dtype=jnp.float32):
        self.key = key
        self.shapes = stage_shapes(batch, latent_height, latent_width, channels, num_stages)
        self.gamma, self.dtype = gamma, jnp.dtype(dtype)

    def __call__(self, index: int) -> UnitNoise:
        return _draw_unit(self.key, index, shapes=self.shapes, gamma=self.gamma, dtype=self.dtype)


class RecordedNoise:
    """Replays given draws. `initial`: `[B, T, H, W, C]` full-resolution starting noise of the whole video (the
    reference's `prepare_latents` draw, before its downsampling); generated unit i starts from frame i.
    `block`: every block-noise draw in order, S-1 per generated unit (stage 1 first).
    """

    def __init__(self, initial, block: Sequence, num_stages: int, dtype=jnp.float32):
        self.latents = lowest_stage_noise(np.asarray(initial, np.float32), num_stages)  # numpy: no device program
        self.block = [np.asarray(b) for b in block]
        self.jumps, self.dtype = num_stages - 1, jnp.dtype(dtype)

    def __call__(self, index: int) -> UnitNoise:
        if index >= self.latents.shape[1] or (index + 1) * self.jumps > len(self.block):
            raise IndexError(f"no recorded noise for generated unit {index}: {self.latents.shape[1]} starting "
                             f"frames and {len(self.block)} block-noise draws were given")
        block = self.block[index * self.jumps:(index + 1) * self.jumps]
        return UnitNoise(jnp.asarray(self.latents[:, index:index + 1], self.dtype),
                         tuple(jnp.asarray(b, self.dtype) for b in block))
