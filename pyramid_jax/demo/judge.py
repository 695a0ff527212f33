"""Reads back what a moving-shapes video shows: the shape's colour, its outline and the direction it moves (the
demo's check), also as a command: `python -m pyramid_jax.demo.judge clip.mp4 [more clips]`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NamedTuple, Sequence

import numpy as np
from scipy import ndimage

from pyramid_jax.demo.shapes import BACKGROUND, COLOURS, DIRECTIONS, MOTIONS, PALETTE

FOREGROUND_DISTANCE = 60.0  # RGB distance from the background above which a pixel belongs to the shape
MIN_SHIFT = 2.0  # pixels the centroid must travel over the clip to count as moving
MIN_PIXELS = 4  # foreground pixels a frame (or one connected piece of it) needs to count
# The upright triangle (shapes.py) holds 3/4 of its area in the lower half of its bounding box, circle and square 1/2;
# a square fills its bounding box, a circle pi/4 of it. Each bound sits about halfway between the classes.
TRIANGLE_LOWER_SHARE = 0.62
SQUARE_FILL = 0.89


class Reading(NamedTuple):
    colour: str  # the palette colour nearest to the shape's median colour
    direction: str  # of the directions read, the one nearest in angle to the centroid's motion
    shift: tuple[float, float]  # centroid motion (x, y) in pixels from the first to the last frame (least squares)
    shape: str  # from the largest piece's median outline: lower-half share and fill of its bounding box
    pieces: int  # the most separate foreground pieces in any frame (a clean clip has 1)
    first_colour: str  # the palette colour nearest to the first shown frame's median (frame 0 can drift alone)

    def describe(self) -> str:
        """In words: the clip's colour, shape and direction, then its travel, pieces and a first frame of its own
        colour."""
        first = "" if self.first_colour == self.colour else f"; {self.first_colour} in its first frame"
        return (f"{self.colour} {self.shape} moving {self.direction} "
                f"(travel {self.shift[0]:+.1f}, {self.shift[1]:+.1f} px; {self.pieces} piece(s){first})")


def _outline(mask: np.ndarray) -> tuple[int, float, float]:
    """Of one frame's mask `[H, W]`: the number of foreground pieces, and of the largest piece the share of its
    area in the lower half of its bounding box and the fill of that box."""
    labels, count = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())[1:]
    pieces = int((sizes >= MIN_PIXELS).sum())
    largest = labels == 1 + int(np.argmax(sizes))
    ys, xs = np.nonzero(largest)
    height = ys.max() - ys.min() + 1
    lower = (ys - ys.min() >= height / 2).sum() + 0.5 * (ys - ys.min() == (height - 1) / 2).sum()
    return pieces, float(lower / ys.size), float(ys.size / (height * (xs.max() - xs.min() + 1)))


def read_video(video: np.ndarray, palette: dict[str, tuple[int, int, int]] = COLOURS,
               directions: dict[str, tuple[int, int]] = DIRECTIONS) -> Reading:
    """`video` uint8 `[T, H, W, 3]`, its colour named from `palette` (the trained colours; `PALETTE` adds the
    taught ones) and its direction from `directions` (the trained ones, whose nearest is the axis and sign of the
    larger motion; `MOTIONS` adds the taught diagonal, read within 22.5 degrees of it); raises ValueError when fewer
    than half of the frames show a shape."""
    video = np.asarray(video, np.float32)
    distance = np.linalg.norm(video - np.asarray(BACKGROUND, np.float32), axis=-1)
    mask = distance > FOREGROUND_DISTANCE  # [T, H, W]
    shown = mask.sum(axis=(1, 2)) >= MIN_PIXELS
    if shown.sum() < max(2, len(video) // 2):
        raise ValueError(f"a shape shows in only {int(shown.sum())} of {len(video)} frames")
    names = list(palette)

    def nearest(pixels: np.ndarray) -> str:
        colour = np.median(pixels, axis=0)
        return names[int(np.argmin([np.linalg.norm(colour - np.asarray(palette[n])) for n in names]))]

    ys, xs = np.mgrid[:video.shape[1], :video.shape[2]]
    frames = np.flatnonzero(shown)
    cx = np.array([xs[mask[t]].mean() for t in frames])
    cy = np.array([ys[mask[t]].mean() for t in frames])
    span = frames[-1] - frames[0]
    dx, dy = (np.polyfit(frames, c, 1)[0] * span for c in (cx, cy))
    moving = max(abs(dx), abs(dy)) >= MIN_SHIFT
    units = np.array([np.divide(d, np.linalg.norm(d)) for d in directions.values()])
    direction = list(directions)[int(np.argmax(units @ np.array([dx, dy])))] if moving else "none"
    pieces, lower, fill = zip(*(_outline(mask[t]) for t in frames))
    shape = ("triangle" if np.median(lower) > TRIANGLE_LOWER_SHARE else
             "square" if np.median(fill) > SQUARE_FILL else "circle")
    return Reading(nearest(video[mask]), direction, (float(dx), float(dy)), shape, max(pieces),
                   nearest(video[frames[0]][mask[frames[0]]]))


def read_frame_folder(folder: str) -> np.ndarray:
    """uint8 `[T, H, W, 3]` from a folder of PNG frames as `sample.py` writes them (`frame_00000.png`, ...)."""
    from PIL import Image

    names = sorted(name for name in os.listdir(folder) if name.startswith("frame_") and name.endswith(".png"))
    if not names:
        raise ValueError(f"{folder} holds no frame_*.png files")
    return np.stack([np.asarray(Image.open(os.path.join(folder, name)).convert("RGB")) for name in names])


def main(argv: Sequence[str] | None = None) -> int:
    """Prints one line per clip: path, colour, shape, direction, travel and pieces (or why it cannot be read)."""
    from pyramid_jax.training.data.errors import DataError
    from pyramid_jax.training.data.frames import read_frames, video_info

    parser = argparse.ArgumentParser(prog="python -m pyramid_jax.demo.judge", description=main.__doc__)
    parser.add_argument("videos", nargs="+", help="video files (.mp4, .gif) of the shapes demo")
    parser.add_argument("--taught", action="store_true",
                        help="also name the colours and directions a LoRA teaches (orange, diagonally)")
    args = parser.parse_args(argv)
    unreadable = 0
    for path in args.videos:
        try:
            reading = read_video(read_frames(path, video_info(path)[0]), *((PALETTE, MOTIONS) if args.taught else
                                                                            (COLOURS, DIRECTIONS)))
        except (ValueError, OSError, DataError) as error:
            print(f"{path}: unreadable: {error}")
            unreadable += 1
            continue
        print(f"{path}: {reading.describe()}")
    return 1 if unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
