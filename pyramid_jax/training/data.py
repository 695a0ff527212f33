"""Batch sources for the training loop: `source(start_step)` yields one `Batch` per step from that step on.

Each batch is a pure function of (seed, step), so a resumed run sees the batches it would have seen.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import jax.numpy as jnp
import numpy as np

from pyramid_jax.sampling import TextConditioning
from pyramid_jax.training.config import DataConfig
from pyramid_jax.training.train_step import Batch


def synthetic_source(data: DataConfig, channels: int, text_dim: int, pooled_dim: int, seed: int):
    """Random normalized latents `[N, T, H, W, C]` and text features (the last quarter of tokens padding)."""

    def batches(start: int) -> Iterator[Batch]:
        for step in itertools.count(start):
            rng = np.random.default_rng((seed, step))
            n, length = data.batch_size, data.text_length
            mask = np.ones((n, length), np.int32)
            mask[:, length - length // 4:] = 0
            yield Batch(
                jnp.asarray(rng.standard_normal((n, data.frames, data.height, data.width, channels), np.float32)),
                TextConditioning(jnp.asarray(rng.standard_normal((n, length, text_dim), np.float32)),
                                 jnp.asarray(mask), jnp.asarray(rng.standard_normal((n, pooled_dim), np.float32))))

    return batches
