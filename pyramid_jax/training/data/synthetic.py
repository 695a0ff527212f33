"""Random training batches for smoke runs and benchmarks, one per step from a start step.

Each global batch is a pure function of (seed, step), so a resumed run sees the batches it would have seen;
each process keeps its `host_rows`.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import jax
import numpy as np

from pyramid_jax.sampling import TextConditioning
from pyramid_jax.training.data.config import DataConfig
from pyramid_jax.training.data.hosts import host_rows
from pyramid_jax.training.data.pipeline import HostBatch


def synthetic_batches(data: DataConfig, channels: int, text_dim: int, pooled_dim: int, seed: int, start: int
                      ) -> Iterator[HostBatch]:
    """Normalized latents `[n, T, H, W, C]` and text features (the last quarter of tokens padding)."""
    for step in itertools.count(start):
        rng = np.random.default_rng((seed, step))
        n, length = data.batch_size, data.text_length
        mask = np.ones((n, length), np.int32)
        mask[:, length - length // 4:] = 0
        batch = HostBatch(rng.standard_normal((n, data.frames, data.height, data.width, channels), np.float32),
                          TextConditioning(rng.standard_normal((n, length, text_dim), np.float32), mask,
                                           rng.standard_normal((n, pooled_dim), np.float32)))
        yield jax.tree.map(lambda x: host_rows(x, jax.process_index(), jax.process_count()), batch)
