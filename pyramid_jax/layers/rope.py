"""Rotary position embedding over several axes, with (possibly fractional) positions (dit_spec.md §2.7).

Tables depend only on shapes, so they are built host-side in float64 and rounded to float32 like the reference.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

ROPE_THETA = 10000.0


def rope_angles(positions: np.ndarray, axes_dims: Sequence[int], theta: float = ROPE_THETA):
    """positions `[N, len(axes_dims)]` -> (cos, sin), each float32 `[N, sum(axes_dims) // 2]`.

    Pair k of axis a rotates by `pos_a * theta^(-2k/dim_a)`; the axes' pairs are laid end to end.
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != len(axes_dims):
        raise ValueError(f"positions must be [N, {len(axes_dims)}], got {positions.shape}")
    angles = [positions[:, a, None] * theta ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
              for a, dim in enumerate(axes_dims)]
    angles = np.concatenate(angles, axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotates adjacent pairs (2k, 2k+1) of x `[B, N, H, d]` by the `[N, d/2]` angles, in float32."""
    x32 = x.astype(jnp.float32).reshape(*x.shape[:-1], -1, 2)
    x0, x1 = x32[..., 0], x32[..., 1]
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    out = jnp.stack([cos * x0 - sin * x1, sin * x0 + cos * x1], axis=-1)
    return out.reshape(x.shape).astype(x.dtype)
