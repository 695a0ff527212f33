"""The temporal-pyramid history: which past frames, at which resolution, condition each stage of a unit.

The most recent frame is given at the resolution of the stage being denoised; walking back in time, each older
frame drops one resolution level until the lowest, and every remaining older frame goes in at the lowest
resolution as one clip (pipeline_spec.md §4c). The layout depends only on shapes, so it is computed host-side.
"""

from __future__ import annotations

import dataclasses

import jax


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
