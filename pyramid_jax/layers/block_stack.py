"""Running a stack of identical transformer blocks, unrolled or as one `lax.scan` over their stacked states.

Scanning traces and compiles one block body whatever the depth (compile time stops growing with layers and
stages), at the price of stacking the blocks' parameters inside the program. Both paths rematerialise each
block by the same policy and compute the same numbers.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.layers.remat import checkpointed

Carry = TypeVar("Carry")


def run_blocks(blocks: Sequence[nnx.Module], carry: Carry, step: Callable[[Callable, Carry], Carry], *,
               remat_policy: str = "none", scan: bool = False) -> Carry:
    """`carry = step(call, carry)` for each block in order, `call` being the block's (rematerialised) call."""
    blocks = list(blocks)
    if not scan or len(blocks) < 2:
        for block in blocks:
            carry = step(checkpointed(block, remat_policy), carry)
        return carry
    graphdef = nnx.graphdef(blocks[0])
    stacked = jax.tree.map(lambda *layers: jnp.stack(layers), *(nnx.state(b) for b in blocks))

    def body(carry, state):
        return step(checkpointed(nnx.merge(graphdef, state), remat_policy), carry), None

    return jax.lax.scan(body, carry, stacked)[0]
