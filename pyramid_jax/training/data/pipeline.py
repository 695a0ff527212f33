"""The grain pipeline over an annotation file: validated records, a bucketed batch plan, threaded reads.

Every record is checked once up front (in threads): a missing or broken file is reported by the `BadFiles`
policy before training starts. The plan (`BatchPlan`) is a grain `MapDataset` source; each element is read by
this process (its `host_rows` of the batch) in grain's reader threads, `prefetch` batches ahead. The iterator's
state is a small JSON dict saved with every checkpoint, so a resumed run reads the same batches in the same order.
"""

from __future__ import annotations

import concurrent.futures
from typing import Callable, NamedTuple

import grain
import jax
import numpy as np

from pyramid_jax.sampling import TextConditioning
from pyramid_jax.training.data.buckets import BatchPlan
from pyramid_jax.training.data.errors import BadFiles, DataError
from pyramid_jax.training.data.hosts import host_rows
from pyramid_jax.training.data.readers import TextReader


class HostBatch(NamedTuple):
    """This process's rows of one global batch, as numpy."""

    samples: np.ndarray  # raw latents [n, T, h, w, C] float32, or video frames [n, F, H, W, 3] uint8
    text: TextConditioning | tuple[str, ...]  # features [n, L, J], [n, L], [n, P], or the n captions


class DataPipeline:
    """Batches of `batch_size` samples (all processes together) from `records` by `reader` and `text`."""

    def __init__(self, records: list[dict], reader, text: TextReader, batch_size: int, seed: int, bad: BadFiles,
                 read_threads: int = 4, prefetch: int = 4, process_index: int | None = None,
                 process_count: int | None = None, log: Callable[[str], None] = print):
        self.reader, self.text, self.bad = reader, text, bad
        self.process_index = jax.process_index() if process_index is None else process_index
        self.process_count = jax.process_count() if process_count is None else process_count
        host_rows(range(batch_size), self.process_index, self.process_count)  # checks the split
        with concurrent.futures.ThreadPoolExecutor(read_threads) as pool:
            keys = list(pool.map(self._key, records))
        usable = [i for i, key in enumerate(keys) if key is not None]
        self.records, self.keys = [records[i] for i in usable], [keys[i] for i in usable]
        self.plan = BatchPlan(self.keys, batch_size, seed)
        log(f"data: {len(usable)} of {len(records)} samples usable ({bad.count} skipped), "
            f"{len(self.plan.bucket_sizes)} bucket(s), {len(self.plan.epoch(0))} batches of {batch_size} per epoch")
        self.read_options = grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch)

    def _key(self, record: dict):
        try:
            return self.reader.key(record) + (self.text.key(record),)
        except DataError as e:
            self.bad.report(e)
            return None

    def load(self, batch: np.ndarray) -> HostBatch:
        """This process's rows of the planned global batch `batch`; a row whose files fail to read is reported
        and, when skipped, replaced by another row of the same batch so that the batch keeps its shape."""
        rows = host_rows(batch, self.process_index, self.process_count)
        loaded = []
        for i in rows:
            try:
                loaded.append((self.reader.load(self.records[i], self.keys[i]), self.text.load(self.records[i])))
            except DataError as e:
                self.bad.report(e)
        if not loaded:
            raise DataError(f"batch of samples {list(rows)}", "none of its files could be read")
        loaded = [loaded[j % len(loaded)] for j in range(len(rows))]
        samples, texts = zip(*loaded)
        text = tuple(texts) if isinstance(texts[0], str) else TextConditioning(*map(np.stack, zip(*texts)))
        return HostBatch(np.stack(samples), text)

    def iterator(self, start: int = 0, state: dict | None = None) -> DataIterator:
        """Batches from plan position `start`, or from where the iterator that saved `state` stopped."""
        if state is not None:
            if state.get("plan") != self.plan.fingerprint():
                raise ValueError(f"the saved data state belongs to another plan ({state.get('plan')}); this run's "
                                 f"data plans {self.plan.fingerprint()}: resuming would not continue its data order")
            start = state["offset"]
        dataset = grain.MapDataset.source(self.plan)[start:].map(self.load)
        iterator = iter(dataset.to_iter_dataset(self.read_options))
        if state is not None:
            iterator.set_state(state["grain"])
        return DataIterator(iterator, self.plan.fingerprint(), start,
                            start if state is None else state["position"])


class DataIterator:
    """Endless `HostBatch` iterator; `position` is the plan position of the next batch."""

    def __init__(self, iterator, plan: dict, offset: int, position: int):
        self._iterator, self._plan, self._offset, self.position = iterator, plan, offset, position

    def __iter__(self):
        return self

    def __next__(self) -> HostBatch:
        batch = next(self._iterator)
        self.position += 1
        return batch

    def get_state(self) -> dict:
        """JSON: the plan's fingerprint, where this iterator started and grain's state within that."""
        return {"plan": self._plan, "offset": self._offset, "position": self.position,
                "grain": self._iterator.get_state()}
