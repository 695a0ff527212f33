"""History buckets: the units of a video share a few compiled programs by padding their history to a bucket size.

A unit after `u` generated frames conditions on a history whose token count grows with `u`, so each unit would
compile its own program. Padding the history to the smallest bucket capacity `>= u` (masked pad frames, runtime
frame ids, see `ImageTokens.leading_pad`) leaves one program per bucket. Buckets are evenly spaced, so the padding
costs at most `(temp - 1) / count` lowest-resolution frames, a small share of a unit's tokens.
"""

from __future__ import annotations

import math


def history_buckets(temp: int) -> tuple[int, ...]:
    """History capacities for the units `1 .. temp - 1` of a `temp`-frame video: `ceil(log2 temp) - 1` evenly
    spaced sizes (at least one), the last `temp - 1`; e.g. 5, 10, 15 for temp 16 and 8, 15, 23, 30 for temp 31."""
    longest = temp - 1
    if longest < 1:
        return ()
    count = min(longest, max(1, math.ceil(math.log2(temp)) - 1))
    return tuple(math.ceil(longest * i / count) for i in range(1, count + 1))


def bucket_capacity(num_frames: int, buckets: tuple[int, ...]) -> int:
    """The smallest capacity in `buckets` that holds `num_frames` history frames; 0 frames need none."""
    if num_frames == 0:
        return 0
    fitting = [b for b in buckets if b >= num_frames]
    if not fitting:
        raise ValueError(f"a history of {num_frames} frames exceeds the largest bucket of {buckets}")
    return min(fitting)
