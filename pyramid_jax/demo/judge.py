"""Reads back what a moving-shapes video shows: the shape's colour and the direction it moves (the demo's check)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pyramid_jax.demo.shapes import BACKGROUND, COLOURS, DIRECTIONS

FOREGROUND_DISTANCE = 60.0  # RGB distance from the background above which a pixel belongs to the shape
MIN_SHIFT = 2.0  # pixels the centroid must travel over the clip to count as moving


class Reading(NamedTuple):
    colour: str  # the palette colour nearest to the shape's median colour
    direction: str  # the axis and sign of the centroid's larger motion
    shift: tuple[float, float]  # centroid motion (x, y) in pixels from the first to the last frame (least squares)


def read_video(video: np.ndarray) -> Reading:
    """`video` uint8 `[T, H, W, 3]`; raises ValueError when fewer than half of the frames show a shape."""
    video = np.asarray(video, np.float32)
    distance = np.linalg.norm(video - np.asarray(BACKGROUND, np.float32), axis=-1)
    mask = distance > FOREGROUND_DISTANCE  # [T, H, W]
    shown = mask.sum(axis=(1, 2)) >= 4
    if shown.sum() < max(2, len(video) // 2):
        raise ValueError(f"a shape shows in only {int(shown.sum())} of {len(video)} frames")
    colour = np.median(video[mask], axis=0)
    names = list(COLOURS)
    nearest = names[int(np.argmin([np.linalg.norm(colour - np.asarray(COLOURS[n])) for n in names]))]
    ys, xs = np.mgrid[:video.shape[1], :video.shape[2]]
    frames = np.flatnonzero(shown)
    cx = np.array([xs[mask[t]].mean() for t in frames])
    cy = np.array([ys[mask[t]].mean() for t in frames])
    span = frames[-1] - frames[0]
    dx, dy = (np.polyfit(frames, c, 1)[0] * span for c in (cx, cy))
    step = (int(np.sign(dx)), 0) if abs(dx) >= abs(dy) else (0, int(np.sign(dy)))
    moving = max(abs(dx), abs(dy)) >= MIN_SHIFT
    direction = next(name for name, d in DIRECTIONS.items() if d == step) if moving else "none"
    return Reading(nearest, direction, (float(dx), float(dy)))
