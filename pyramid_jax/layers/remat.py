"""Rematerialisation (gradient checkpointing) of transformer blocks, by policy name.

A block called through `checkpointed` keeps only what the policy saves and recomputes the rest in the backward
pass, so activation memory grows with one block instead of the whole depth. No numerical effect.
"""

from __future__ import annotations

from typing import Callable

import jax
from flax import nnx

REMAT_POLICIES: dict[str, Callable | None] = {
    "none": None,  # no remat: keep every activation (fastest, most memory)
    "full": jax.checkpoint_policies.nothing_saveable,  # keep only each block's inputs
    "dots": jax.checkpoint_policies.dots_saveable,  # keep matmul outputs, recompute norms/GELU/softmax
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # also recompute attention scores
}


def checkpointed(block: nnx.Module, policy: str) -> Callable:
    """`block`'s call, rematerialised under `policy` (the plain call for "none"); keyword arguments are static."""
    if REMAT_POLICIES[policy] is None:
        return block

    def call(*args, **static):
        return nnx.remat(lambda b, *args: b(*args, **static), policy=REMAT_POLICIES[policy])(block, *args)

    return call
