"""The sampler's NaN/inf guard: one reduction per unit, read on the host one unit late so the device never idles."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pyramid_jax.errors import NonFiniteError


@jax.jit
def _all_finite(x: jax.Array) -> jax.Array:
    return jnp.isfinite(x).all()


class FiniteCheck:
    """`check(latent, unit)` after each unit is dispatched, `check.done()` after the last: raises `NonFiniteError`
    naming the first unit whose latents hold NaN or inf (before anything is decoded or written)."""

    def __init__(self):
        self._pending: tuple[int, jax.Array] | None = None

    def __call__(self, latent: jax.Array, unit: int) -> None:
        self.done()
        self._pending = (unit, _all_finite(latent))

    def done(self) -> None:
        if self._pending is None:
            return
        unit, finite = self._pending
        self._pending = None
        if not bool(finite):
            raise NonFiniteError(f"the latents of unit {unit} (latent frame {unit}) are NaN or infinite after "
                                 "sampling; nothing was decoded. Check the guidance scales and the weights, or try "
                                 "float32 (--dtype fp32)")
