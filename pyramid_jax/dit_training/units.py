"""Per-stage unit allocation for autoregressive training (`sample_stage_length`, pipeline_spec.md §5d).

The stage-2 (full-resolution) column trains AR position `n_high`, the lower columns the complementary position,
so the token budget per step stays about constant. Within a video sync group of G ranks, rank r covers positions
r+1, r+1+G, ...; one SPMD program has a single allocation per step, so use G = 1 there to visit every position.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import struct

from pyramid_jax.sampling.buckets import bucket_capacity, history_buckets


def stage_units(counter: int, max_units: int, num_stages: int = 3, sync_group: int = 1, rank: int = 0,
                available: int | None = None) -> tuple[int, ...]:
    """Units (latent frames, one per unit) each stage trains on at step `counter` (the reference increments first).

    `max_units`: units of the longest training clip; `available`: units the current clip really has.
    Returns `(n_low, ..., n_mid, n_high)`: every stage but the last gets `1 + max_units - n_high`.
    """
    turns = max_units // sync_group
    if turns < 1:
        raise ValueError(f"max_units {max_units} is smaller than the video sync group {sync_group}")
    high = max(rank % sync_group + 1 + (counter % turns) * sync_group, 1)
    low = max(1 + max_units - high, 1)
    units = (low,) * (num_stages - 1) + (high,)
    return units if available is None else tuple(min(n, available) for n in units)


def unit_capacities(units: tuple[int, ...], max_units: int) -> tuple[int, ...]:
    """History frames each stage's column is padded to (`PaddedHistory`) so that the allocations of a whole
    `stage_units` cycle share a few compiled programs.

    The last (full-resolution) stage's history `n_high - 1` picks the bucket: `bucket_capacity` over the sampler's
    `history_buckets(max_units)`, plus 0 for no history. The other stages (`n_low - 1 = max_units - n_high` frames)
    get the longest history they have in that bucket's allocations. So a cycle of `max_units` allocations compiles
    `len(history_buckets(max_units)) + 1` programs (4 for 16 units, 5 for 31), and the padding costs only lowest
    resolution frames. An allocation outside the cycle (clipped to a shorter clip, a video sync group) still fits:
    no stage is padded below its own history.
    """
    buckets = history_buckets(max_units)
    high = bucket_capacity(units[-1] - 1, buckets)
    shortest = 0 if high == 0 else max([0, *(b for b in buckets if b < high)]) + 1  # the bucket's first history
    low = max_units - 1 - shortest  # stage_units: n_low - 1 = max_units - n_high
    return tuple(max(low, n - 1) for n in units[:-1]) + (max(high, units[-1] - 1),)


@struct.dataclass
class PaddedUnits:
    """A unit allocation as a runtime input of the train step: `counts [S] int32` units per stage (traced, so the
    allocations of one bucket share a program) and `capacities` (static) the history frames each stage's columns
    are padded to, from `unit_capacities`."""

    counts: jax.Array
    capacities: tuple[int, ...] = struct.field(pytree_node=False)

    @classmethod
    def bucketed(cls, units: tuple[int, ...], max_units: int) -> PaddedUnits:
        """`units` (from `stage_units`) with the capacities of its bucket."""
        return cls(np.asarray(units, np.int32), unit_capacities(tuple(units), max_units))
