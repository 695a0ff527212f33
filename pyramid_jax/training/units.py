"""Per-stage unit allocation for autoregressive training (`sample_stage_length`, pipeline_spec.md §5d).

The stage-2 (full-resolution) column trains AR position `n_high`, the lower columns the complementary position,
so the token budget per step stays about constant. Within a video sync group of G ranks, rank r covers positions
r+1, r+1+G, ...; one SPMD program has a single allocation per step, so use G = 1 there to visit every position.
"""

from __future__ import annotations


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
