"""Procedural clips of one coloured shape moving in a straight line, the embedded demo's training videos."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 80, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 210),
    "cyan": (40, 205, 215),
}
# Colours the base demo never saw (in no caption, not in its vocabulary): what a LoRA teaches it
# (tools/teach_shapes_lora.py).
TAUGHT_COLOURS: dict[str, tuple[int, int, int]] = {"orange": (245, 130, 20)}
PALETTE = {**COLOURS, **TAUGHT_COLOURS}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}  # (x, y)
# A motion the base demo never saw (the word is in no caption and not in its vocabulary): "diagonally" is towards the
# lower right, both axes at the speed of an ordinary motion (tools/teach_shapes_lora.py teaches it with a LoRA).
TAUGHT_DIRECTIONS: dict[str, tuple[int, int]] = {"diagonally": (1, 1)}
MOTIONS = {**DIRECTIONS, **TAUGHT_DIRECTIONS}
BACKGROUND = (28, 28, 36)
SUPERSAMPLING = 4  # sub-pixel grid per pixel side, for anti-aliased edges


@dataclasses.dataclass(frozen=True)
class ShapeClip:
    """One clip: `shape` in `colour` with radius `radius` px, centred at (`x`, `y`) px in frame 0, moving
    `speed` px per frame towards `direction`."""

    colour: str
    shape: str
    direction: str
    x: float
    y: float
    radius: float
    speed: float

    def centre(self, frame: int) -> tuple[float, float]:
        dx, dy = MOTIONS[self.direction]
        return self.x + dx * self.speed * frame, self.y + dy * self.speed * frame


def random_clip(rng: np.random.Generator, frames: int, size: int, colour: str | None = None,
                shape: str | None = None, direction: str | None = None,
                directions: Sequence[str] = tuple(DIRECTIONS)) -> ShapeClip:
    """A clip whose shape stays wholly inside the `size` x `size` frame for all `frames` frames; the direction is
    drawn from `directions` (names of `MOTIONS`) unless given."""
    colour = colour or rng.choice(list(COLOURS))
    shape = shape or rng.choice(SHAPES)
    direction = direction or rng.choice(list(directions))
    if direction not in MOTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose one of {list(MOTIONS)}")
    radius = rng.uniform(0.14, 0.19) * size
    speed = rng.uniform(0.45, 0.6) * (size - 2 * radius - 4) / max(frames - 1, 1)
    travel = speed * (frames - 1)
    low, high = radius + 2, size - radius - 2
    dx, dy = MOTIONS[direction]
    along = rng.uniform(low, high - travel)  # start coordinate on the axis of motion, counted in its direction
    across = rng.uniform(low, high - travel if dx and dy else high)  # a diagonal moves along both axes
    start = {1: along, -1: size - along, 0: across}  # x and y from the direction's signs
    x, y = start[dx], ({1: across, -1: size - across} if dx and dy else start)[dy]
    return ShapeClip(str(colour), str(shape), str(direction), float(x), float(y), float(radius), float(speed))


def _coverage(shape: str, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Boolean inside-mask of `shape` centred at the origin, on sub-pixel coordinates `x`, `y`."""
    if shape == "circle":
        return x * x + y * y <= radius * radius
    if shape == "square":
        half = 0.85 * radius
        return (np.abs(x) <= half) & (np.abs(y) <= half)
    if shape == "triangle":  # pointing up, inscribed in the circle of `radius`
        bottom = 0.5 * radius
        slope = np.sqrt(3.0)
        return (y <= bottom) & (y >= -radius + slope * np.abs(x))
    raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPES}")


def render(clip: ShapeClip, frames: int, size: int) -> np.ndarray:
    """uint8 video `[frames, size, size, 3]` of `clip` on the plain background, edges anti-aliased."""
    s = SUPERSAMPLING
    grid = (np.arange(size * s) + 0.5) / s
    colour, background = np.asarray(PALETTE[clip.colour], np.float32), np.asarray(BACKGROUND, np.float32)
    video = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        cx, cy = clip.centre(t)
        inside = _coverage(clip.shape, grid[None, :] - cx, grid[:, None] - cy, clip.radius)
        alpha = inside.reshape(size, s, size, s).mean(axis=(1, 3))[..., None]
        video[t] = np.round(alpha * colour + (1 - alpha) * background).astype(np.uint8)
    return video
