"""Video frames for the VAE: decoding (imageio-ffmpeg), the 1 + 8k frame rule, resize and centre crop.

Like the reference's extraction (pipeline_spec.md §6b): keep the first frames (or those listed in the record's
`frames`), cut to 1 + 8k, scale by the larger of the two ratios with bicubic filtering so the target fits, crop
the centre, and map to [-1, 1].
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from pyramid_jax.training.data.errors import DataError, reading

TEMPORAL_FACTOR = 8  # video frames per latent frame after the first

# imageio-ffmpeg starts ffmpeg with subprocess, which trips JAX's fork warning; the child never runs JAX.
warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning, module="subprocess")


def latent_frames(num_frames: int) -> int:
    """Latent frames the VAE makes of the first 1 + 8k <= `num_frames` frames."""
    return 1 + (num_frames - 1) // TEMPORAL_FACTOR


def pixel_frames(num_latent_frames: int) -> int:
    return 1 + TEMPORAL_FACTOR * (num_latent_frames - 1)


def video_info(path: str) -> tuple[int, int, int]:
    """`(frames, height, width)` of a video file (decodes it once to count the frames exactly)."""
    import imageio_ffmpeg

    with reading(path, "video"):
        reader = imageio_ffmpeg.read_frames(path)
        width, height = next(reader)["size"]
        reader.close()
        frames, _ = imageio_ffmpeg.count_frames_and_secs(path)
    if frames < 1:
        raise DataError(path, "the video has no frames")
    return frames, height, width


def read_frames(path: str, count: int, indices: Sequence[int] | None = None) -> np.ndarray:
    """uint8 `[count, H, W, 3]`: the first `count` frames, or the frames at the first `count` of `indices`."""
    import imageio_ffmpeg

    wanted = list(range(count)) if indices is None else [int(i) for i in indices[:count]]
    if len(wanted) < count:
        raise DataError(path, f"`frames` lists {len(wanted)} frames, {count} needed")
    frames, positions = {}, set(wanted)
    with reading(path, "video"):
        reader = imageio_ffmpeg.read_frames(path)
        width, height = next(reader)["size"]
        for index, data in enumerate(reader):
            if index in positions:
                frames[index] = np.frombuffer(data, np.uint8).reshape(height, width, 3)
            if len(frames) == len(positions):
                break
        reader.close()
    if len(frames) < len(positions):
        raise DataError(path, f"the video has fewer frames than the {max(wanted) + 1} needed")
    return np.stack([frames[i] for i in wanted])


def resize_crop(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 `[F, H, W, 3]` -> `[F, height, width, 3]`: bicubic scale until both sides fit, centre crop."""
    from PIL import Image

    h, w = frames.shape[1:3]
    scale = max(height / h, width / w)
    size = (max(width, math.ceil(w * scale)), max(height, math.ceil(h * scale)))
    top, left = (size[1] - height) // 2, (size[0] - width) // 2
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC))[top:top + height, left:left + width]
                     for f in frames])


def to_unit_range(frames):
    """uint8 pixels -> float32 in [-1, 1] (numpy or jax arrays)."""
    return frames.astype(np.float32) / 127.5 - 1.0
