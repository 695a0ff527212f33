"""Rematerialisation (gradient checkpointing) policies by name, for configs and the command line.

The train step applies the policy to the whole DiT forward with `jax.checkpoint`: activations the policy does not
save are recomputed in the backward pass. Per-block remat (the reference's `gradient_checkpointing_ratio`) would
need the DiT itself to wrap its block calls in `nnx.remat`.
"""

from __future__ import annotations

import enum
from typing import Callable

import jax


class RematPolicy(str, enum.Enum):
    NONE = "none"  # keep every activation (fastest, most memory)
    FULL = "full"  # keep nothing: recompute the whole forward in the backward pass
    DOTS = "dots"  # keep every matmul output, recompute elementwise ops (norms, GELU, softmax)
    DOTS_NO_BATCH = "dots_no_batch"  # keep weight matmuls only; also recompute attention scores [B, H, N, N]

    def apply(self, fn: Callable) -> Callable:
        """`fn` wrapped in `jax.checkpoint` with this policy (unchanged for NONE)."""
        if self is RematPolicy.NONE:
            return fn
        policies = jax.checkpoint_policies
        policy = {RematPolicy.FULL: policies.nothing_saveable, RematPolicy.DOTS: policies.dots_saveable,
                  RematPolicy.DOTS_NO_BATCH: policies.dots_with_no_batch_dims_saveable}[self]
        return jax.checkpoint(fn, policy=policy)
