"""The temporal-pyramid history: which past frames, at which resolution, condition each stage of a unit.

The most recent frame is given at the resolution of the stage being denoised; walking back in time, each older
frame drops one resolution level until the lowest, and every remaining older frame goes in at the lowest
resolution as one clip (pipeline_spec.md §4c). The layout depends only on shapes, so it is computed host-side.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class HistoryClip:
    """Frames `start:stop` of the generated video at pyramid level `level` (0 = lowest resolution)."""

    level: int
    start: int
    stop: int


def history_clips(num_frames: int, stage: int) -> tuple[HistoryClip, ...]:
    """The condition clips for denoising `stage` after `num_frames` generated frames, oldest first."""
    if num_frames == 0:
        return ()
    newest_first = [HistoryClip(stage, num_frames - 1, num_frames)]
    end = num_frames - 1
    for level in range(stage - 1, 0, -1):
        if end == 0:
            break
        newest_first.append(HistoryClip(level, end - 1, end))
        end -= 1
    if end > 0:
        newest_first.append(HistoryClip(0, 0, end))
    return tuple(reversed(newest_first))


def past_conditions(pyramid: list[jax.Array], stage: int) -> list[jax.Array]:
    """Condition clips `[B, t, h, w, C]` for `stage`, cut from the history pyramid (`latent_pyramid` output)."""
    num_frames = pyramid[0].shape[1]
    return [pyramid[c.level][:, c.start:c.stop] for c in history_clips(num_frames, stage)]


@dataclasses.dataclass(frozen=True)
class PaddedHistory:
    """The condition clips of `stage` for a history padded to `capacity` frames: `history_clips(capacity, stage)`
    whose newest `u` frames are real and whose older `capacity - u` are masked pad, for any `u <= capacity` known
    only at run time.

    A real frame keeps its level when padded (each older frame drops one level until the lowest, whatever the
    capacity), so the unpadded clips of `history_clips(u, stage)` are the ends of the padded clips, matched from the
    newest. `source[u, p]` is the index of the unpadded clip that ends padded clip `p` (-1: none, all pad) and
    `real[u, p]` its frame count; host-built tables for gathering with a traced `u`.
    """

    capacity: int
    stage: int

    @functools.cached_property
    def clips(self) -> tuple[HistoryClip, ...]:
        return history_clips(self.capacity, self.stage)

    @functools.cached_property
    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        padded = self.clips
        source = np.full((self.capacity + 1, len(padded)), -1, np.int32)
        real = np.zeros((self.capacity + 1, len(padded)), np.int32)
        for u in range(self.capacity + 1):
            exact = history_clips(u, self.stage)
            shift = len(padded) - len(exact)
            for j, clip in enumerate(exact):
                outer = padded[j + shift]
                pad = self.capacity - u
                # the real frames sit at the padded clip's end, at the same level and (less the pad) frame numbers
                assert outer.level == clip.level and outer.stop - pad == clip.stop and outer.start - pad <= clip.start
                source[u, j + shift], real[u, j + shift] = j, clip.stop - clip.start
        return source, real

    @property
    def source(self) -> np.ndarray:
        return self._tables[0]

    @property
    def real(self) -> np.ndarray:
        return self._tables[1]
