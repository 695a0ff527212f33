"""Dense layers carrying logical-axis names, so one rule table can shard every parameter."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

Axes = tuple[str | None, ...]


def dense(in_features: int, out_features: int, axes: Axes, *, rngs: nnx.Rngs, dtype=jnp.float32,
          param_dtype=jnp.float32, use_bias: bool = True, kernel_init=nnx.initializers.xavier_uniform(),
          bias_init=nnx.initializers.zeros_init()) -> nnx.Linear:
    """An `nnx.Linear` whose kernel is named `axes` ([in, out]) and whose bias (if any) is named `axes[1:]`."""
    return nnx.Linear(
        in_features, out_features, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        kernel_init=nnx.with_metadata(kernel_init, logical_axes=tuple(axes)),
        bias_init=nnx.with_metadata(bias_init, logical_axes=tuple(axes[1:])))
