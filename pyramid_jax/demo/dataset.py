"""Writes the moving-shapes dataset: one mp4 per clip and a jsonl annotation file that `train.py` reads."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from pyramid_jax.demo.captions import random_caption
from pyramid_jax.demo.models import FRAMES, SIZE
from pyramid_jax.demo.shapes import COLOURS, DIRECTIONS, random_clip, render
from pyramid_jax.io.video import save_frames
from pyramid_jax.training.data.annotations import write_annotations


def write_shapes_dataset(folder: str, count: int, *, seed: int = 0, frames: int = FRAMES, size: int = SIZE,
                         colours: Sequence[str] = tuple(COLOURS), directions: Sequence[str] = tuple(DIRECTIONS),
                         progress=iter) -> str:
    """`count` clips of `frames` frames, `size` x `size` px, in colours drawn from `colours` moving in directions
    drawn from `directions` (repeat a name to draw it more often), under
    `folder/videos/`; returns the annotation path `folder/train.jsonl` (records: `video`, `text`, and the clip's
    `colour`, `shape` and `direction`)."""
    if count < 1 or frames < 1 or size < 8:
        raise ValueError(f"need count >= 1, frames >= 1 and size >= 8; got {count}, {frames}, {size}")
    rng = np.random.default_rng(seed)
    videos = os.path.join(folder, "videos")
    os.makedirs(videos, exist_ok=True)
    records = []
    for i in progress(range(count)):
        clip = random_clip(rng, frames, size, colour=str(rng.choice(list(colours))),  # random_clip's own first draw
                           directions=directions)
        path = save_frames(render(clip, frames, size), os.path.join(videos, f"{i:06d}.mp4"))
        records.append({"video": path, "text": random_caption(rng, clip), "colour": clip.colour,
                        "shape": clip.shape, "direction": clip.direction})
    annotation = os.path.join(folder, "train.jsonl")
    write_annotations(annotation, records)
    return annotation
