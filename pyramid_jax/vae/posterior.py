"""The encoder's diagonal Gaussian posterior over latents (vae_spec.md §3.8)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

LOGVAR_RANGE = (-30.0, 20.0)


@struct.dataclass
class DiagonalGaussian:
    """N(mean, exp(logvar)) per latent element; `mean` and `logvar` are `[B, T, H, W, z]`, logvar clamped."""

    mean: jax.Array
    logvar: jax.Array

    @classmethod
    def from_moments(cls, moments: jax.Array) -> DiagonalGaussian:
        """Moments `[B, T, H, W, 2z]`: the first z channels are the mean, the last z the log-variance."""
        mean, logvar = jnp.split(moments, 2, axis=-1)
        return cls(mean, jnp.clip(logvar, *LOGVAR_RANGE))

    @property
    def std(self) -> jax.Array:
        return jnp.exp(0.5 * self.logvar)

    def kl(self) -> jax.Array:
        """KL(posterior || N(0, I)) summed over `T, H, W`: `[B, z]` (the training loss averages it)."""
        per_element = 0.5 * (jnp.square(self.mean) + jnp.exp(self.logvar) - 1.0 - self.logvar)
        return jnp.sum(per_element, axis=(1, 2, 3))

    def mode(self) -> jax.Array:
        return self.mean

    def sample(self, key: jax.Array | None = None, *, noise: jax.Array | None = None) -> jax.Array:
        """mean + std * noise, with standard-normal noise drawn from `key` or given (e.g. a recorded draw)."""
        if (key is None) == (noise is None):
            raise ValueError("pass exactly one of `key` and `noise`")
        if noise is None:
            noise = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        elif noise.shape != self.mean.shape:
            raise ValueError(f"noise shape {noise.shape} != latent shape {self.mean.shape}")
        return self.mean + self.std * noise
