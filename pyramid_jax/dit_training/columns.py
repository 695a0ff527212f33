"""Batch columns (pipeline_spec.md §5b): sample i trains in column i % S, and each column is one pyramid stage.

`sample_ratios` (1, 2, 1) gives S = 4 columns at stages (0, 1, 1, 2), i.e. 25/50/25% of the samples per stage.
The DiT's per-(sample, column) rows are interleaved `b*S + s`, which is exactly the original sample order.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class ColumnLayout:
    """Which stage each column trains; column s holds samples s, s+S, s+2S, ..."""

    column_stages: tuple[int, ...]

    @classmethod
    def from_ratios(cls, sample_ratios: Sequence[int]) -> ColumnLayout:
        return cls(tuple(stage for stage, count in enumerate(sample_ratios) for _ in range(count)))

    @property
    def num_columns(self) -> int:
        return len(self.column_stages)

    def batch_per_column(self, num_samples: int) -> int:
        if num_samples % self.num_columns:
            raise ValueError(f"the batch ({num_samples} samples) must be a multiple of the {self.num_columns} "
                             f"columns of sample_ratios (stages {self.column_stages})")
        return num_samples // self.num_columns

    def column(self, x: jax.Array, column: int) -> jax.Array:
        """Rows `column::S` of a per-sample array `[N, ...]` -> `[N/S, ...]` (a reshape, so batch sharding stays)."""
        b = self.batch_per_column(x.shape[0])
        return x.reshape(b, self.num_columns, *x.shape[1:])[:, column]

    def interleave(self, per_column: Sequence[jax.Array]) -> jax.Array:
        """Per-column rows `[B, ...]` -> `[B*S, ...]` with row `b*S + s` from column s (inverse of `column`)."""
        stacked = jnp.stack(per_column, axis=1)
        return stacked.reshape(-1, *stacked.shape[2:])
