"""Adaptive LayerNorm modulations driven by the conditioning vector `temb` (dit_spec.md §2.3).

Each takes one stage's stream `[B, N, D]` and that stage's `temb [B, D]`; modulation is broadcast over tokens.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.layers.linear import dense
from pyramid_jax.layers.norms import layer_norm
from pyramid_jax.parallel.rules import constrain


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    """LN(x) * (1 + scale) + shift in float32, cast back to x's dtype; shift/scale are [B, D]."""
    out = layer_norm(x) * (1.0 + scale[:, None].astype(jnp.float32)) + shift[:, None].astype(jnp.float32)
    return out.astype(x.dtype)


class _AdaLN(nnx.Module):
    chunks: int

    def __init__(self, dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.linear = dense(dim, self.chunks * dim, ("embed", "mlp"), rngs=rngs, dtype=dtype,
                            param_dtype=param_dtype, kernel_init=nnx.initializers.zeros_init())

    def _chunks(self, temb: jax.Array) -> list[jax.Array]:
        # The modulations `[B, chunks * D]` are split by samples only, their width whole on each device. Left split
        # over `tensor` like the kernel, XLA (jax 0.10.2) miscompiles the gated residual `gate * (x @ W1 @ W2)` when
        # the batch is split over ("data", "fsdp") and the weights over "fsdp" and "tensor": the MLP output's rows
        # come back in ("fsdp", "data") device order, so samples swap between devices and the loss is wrong.
        # tests/dit_training/test_parallel_step.py checks a data x fsdp x tensor mesh.
        return jnp.split(constrain(self.linear(jax.nn.silu(temb)), ("batch", None)), self.chunks, axis=-1)


class AdaLNZero(_AdaLN):
    """Chunks (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp); returns x̂ and the last four."""

    chunks = 6

    def __call__(self, x, temb):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self._chunks(temb)
        return modulate(x, shift_msa, scale_msa), gate_msa, shift_mlp, scale_mlp, gate_mlp


class AdaLNZeroSingle(_AdaLN):
    """Chunks (shift, scale, gate); returns x̂ and gate."""

    chunks = 3

    def __call__(self, x, temb):
        shift, scale, gate = self._chunks(temb)
        return modulate(x, shift, scale), gate


class AdaLNContinuous(_AdaLN):
    """Chunks (scale, shift), in that reversed order; returns x̂."""

    chunks = 2

    def __call__(self, x, temb):
        scale, shift = self._chunks(temb.astype(x.dtype))
        return modulate(x, shift, scale)
