"""Training batches from a `DataIterator` with its checkpointable state: what a run's `loop.BatchSource` returns."""

from __future__ import annotations

from typing import Any, Callable

from pyramid_jax.training.data.pipeline import DataIterator, HostBatch


class Batches:
    """Training batches from a `DataIterator`, with its checkpointable state."""

    def __init__(self, iterator: DataIterator, maker: Callable[[HostBatch, int], Any]):
        """`maker(host_batch, its plan position)` -> the batch the step takes."""
        self.iterator, self.maker = iterator, maker

    def __iter__(self):
        return self

    def __next__(self):
        position = self.iterator.position
        return self.maker(next(self.iterator), position)

    def get_state(self) -> dict:
        return self.iterator.get_state()
