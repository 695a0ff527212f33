"""Length and resolution bucketing: every global batch holds samples of one bucket (one latent shape).

A sample's bucket key is its latent shape after cutting to the longest clip trained (`frames`), plus the shape
of its text features; videos first pick the closest of the configured resolutions by aspect ratio (the
reference's image buckets; its video data has a fixed size). `BatchPlan` turns the keys into the run's sequence
of global batches, a pure function of (keys, batch size, seed), so any position in it can be recomputed.
"""

from __future__ import annotations

import bisect
import collections
import functools
import hashlib
import math
import sys
import threading
from typing import Hashable, Sequence

import numpy as np


def closest_resolution(height: int, width: int, resolutions: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The `(height, width)` of `resolutions` whose aspect ratio is closest to `height x width` (log scale)."""
    return min(resolutions, key=lambda r: abs(math.log((r[1] / r[0]) / (width / height))))


class BatchPlan(Sequence):
    """The run's global batches (arrays of sample positions), epoch after epoch, endlessly.

    Epoch e shuffles the samples with `(seed, e)` and deals them in that order into one bucket per key; each
    time a bucket holds `batch_size` samples it becomes the next batch and is emptied. Samples left in unfilled
    buckets at the end of the epoch are not used in that epoch.
    """

    def __init__(self, keys: Sequence[Hashable], batch_size: int, seed: int):
        self.keys, self.batch_size, self.seed = list(keys), batch_size, seed
        self.bucket_sizes = collections.Counter(self.keys)
        if not self.keys or max(self.bucket_sizes.values()) < batch_size:
            raise ValueError(f"no bucket holds a whole batch of {batch_size} samples; bucket sizes by key: "
                             f"{dict(self.bucket_sizes)}")
        self._starts = [0]  # position of each computed epoch's first batch
        self._lock = threading.Lock()

    @functools.lru_cache(maxsize=4)
    def epoch(self, epoch: int) -> tuple[np.ndarray, ...]:
        order = np.random.default_rng((self.seed, epoch)).permutation(len(self.keys))
        buckets, batches = collections.defaultdict(list), []
        for i in order:
            bucket = buckets[self.keys[i]]
            bucket.append(int(i))
            if len(bucket) == self.batch_size:
                batches.append(np.asarray(bucket))
                bucket.clear()
        return tuple(batches)

    def __len__(self) -> int:
        return sys.maxsize  # endless: epochs follow each other

    def __getitem__(self, position: int) -> np.ndarray:
        with self._lock:
            while self._starts[-1] <= position:
                self._starts.append(self._starts[-1] + len(self.epoch(len(self._starts) - 1)))
            epoch = bisect.bisect_right(self._starts, position) - 1
        return self.epoch(epoch)[position - self._starts[epoch]]

    def fingerprint(self) -> dict:
        """What the plan depends on, to check that a restored iterator state belongs to this plan."""
        digest = hashlib.sha256(repr(self.keys).encode()).hexdigest()[:16]
        return {"samples": len(self.keys), "keys": digest, "batch_size": self.batch_size, "seed": self.seed}
