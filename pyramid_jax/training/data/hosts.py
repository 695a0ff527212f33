"""Per-host data: every process plans the same global batches and reads only its own rows of each.

`place_batch` then assembles the global array from the processes' rows, so no process reads a file another
one needs, and a whole global batch always comes from one bucket (one shape on every host).
"""

from __future__ import annotations

from typing import Sequence


def host_rows(batch: Sequence, process_index: int, process_count: int) -> Sequence:
    """Process `process_index`'s contiguous share of a global batch (its length a multiple of `process_count`)."""
    if len(batch) % process_count:
        raise ValueError(f"the global batch ({len(batch)} samples) must be a multiple of the {process_count} "
                         "processes")
    size = len(batch) // process_count
    return batch[process_index * size:(process_index + 1) * size]
