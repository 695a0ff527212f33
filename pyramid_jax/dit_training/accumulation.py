"""Gradient accumulation: one step's loss and gradients as the mean over k micro-batches (`lax.scan`).

Micro-batch j takes the sample groups j, j+k, j+2k, ... (a group is the S consecutive samples that fill one row
of the columns), so every sample keeps its column, and a batch sharded in contiguous rows over the devices gives
each device its share of every micro-batch. With `KeyRandomness(key, groups)` each micro-batch draws what the
whole batch draws for its samples, and all micro-batches have the same size, so the result equals the loss and
gradients of the whole batch up to float rounding, in about 1/k of the activation memory.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from pyramid_jax.dit_training.objective import KeyRandomness
from pyramid_jax.sampling import TextConditioning

# (latents, text, randomness) -> (loss, gradients)
LossAndGrads = Callable[[jax.Array, TextConditioning, KeyRandomness], tuple[jax.Array, object]]


def split_micro_batches(x: jax.Array, count: int, group_size: int) -> jax.Array:
    """`[N, ...]` -> `[count, N / count, ...]`, micro-batch j holding the groups j, j + count, ..."""
    groups = x.shape[0] // group_size
    if x.shape[0] % group_size or groups % count:
        raise ValueError(f"the batch ({x.shape[0]} samples) must be a multiple of grad_accum ({count}) x the "
                         f"{group_size} columns of sample_ratios")
    grouped = x.reshape(groups // count, count, group_size, *x.shape[1:])
    return jnp.moveaxis(grouped, 1, 0).reshape(count, -1, *x.shape[1:])


def micro_batch_groups(num_samples: int, count: int, group_size: int) -> jax.Array:
    """`[count, G]`: the groups of each micro-batch, as positions in the whole batch (see `KeyRandomness`)."""
    per_micro = num_samples // group_size // count
    return jnp.arange(count)[:, None] + count * jnp.arange(per_micro)[None, :]


def accumulated(loss_and_grads: LossAndGrads, latents: jax.Array, text: TextConditioning, key: jax.Array,
                count: int, group_size: int, zero_grads=None) -> tuple[jax.Array, object]:
    """Mean loss and gradients over `count` micro-batches of the batch (`count == 1`: the whole batch at once).

    `zero_grads`: zeros shaped (and, under a mesh, sharded) like the gradients, the sum's starting value.
    """
    if count == 1:
        return loss_and_grads(latents, text, KeyRandomness(key))
    micro = jax.tree.map(lambda x: split_micro_batches(x, count, group_size), (latents, text))
    groups = micro_batch_groups(latents.shape[0], count, group_size)

    def body(total, xs):
        (latents, text), groups = xs
        return jax.tree.map(jnp.add, total, loss_and_grads(latents, text, KeyRandomness(key, groups))), None

    total, _ = jax.lax.scan(body, (jnp.zeros((), jnp.float32), zero_grads), (micro, groups))
    return jax.tree.map(lambda x: x / count, total)
