"""A clip to extend, read and checked before any model runs: uint8 frames, a video file, or DiT latents.

Pixels follow the causal VAE's 1 + 8k frame rule (frame 0 alone, then 8 per latent frame); `trim` drops the oldest
frames to the nearest such count, so that the continuation still follows the clip's last frame. Latents are the
DiT's (normalised) latents, as `generate(output_type="latent")` returns and `sample.py --save-latents` writes.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from pyramid_jax.errors import ArgumentError
from pyramid_jax.io.atomic import atomic_file
from pyramid_jax.training.data.errors import DataError
from pyramid_jax.training.data.frames import TEMPORAL_FACTOR, read_frames, video_info

LATENT_SUFFIX = ".npy"


@dataclasses.dataclass(frozen=True)
class Clip:
    """Exactly one of: `pixels` uint8 `[T, H, W, 3]` with T = 1 + 8k, or `latents` float32 `[B, T, h, w, C]`."""

    pixels: np.ndarray | None = None
    latents: np.ndarray | None = None

    @property
    def latent_frames(self) -> int:
        return self.latents.shape[1] if self.latents is not None else 1 + (len(self.pixels) - 1) // TEMPORAL_FACTOR


def read_clip(video, trim: bool = False) -> Clip:
    """`video`: uint8 `[T, H, W, 3]` frames, a video file path, or latents (`[T, h, w, C]` / `[B, T, h, w, C]`
    float array or a `.npy` path). Raises ArgumentError / FileNotFoundError naming `video` for anything else."""
    if isinstance(video, (str, os.PathLike)):
        path = os.fspath(video)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"video file {path} does not exist")
        if path.endswith(LATENT_SUFFIX):
            try:
                return _latents(np.load(path), f"video latents {path}")
            except (OSError, ValueError) as e:
                raise ValueError(f"video latents {path} are unreadable ({e})") from None
        try:
            frames = read_frames(path, video_info(path)[0])
        except DataError as e:
            raise ValueError(f"video {e}") from None
        return _pixels(frames, f"video {path}", trim)
    array = np.asarray(video)
    if array.dtype == np.uint8:
        return _pixels(array, "video", trim)
    if np.issubdtype(array.dtype, np.floating):
        return _latents(array, "video latents")
    raise ArgumentError(f"video must be uint8 frames [T, H, W, 3], float latents [B, T, h, w, C], a video file or "
                        f"a .npy path; got a {array.dtype} array")


def _pixels(frames: np.ndarray, what: str, trim: bool) -> Clip:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ArgumentError(f"{what} must be uint8 RGB frames [T, H, W, 3]; got shape {frames.shape}")
    extra = (len(frames) - 1) % TEMPORAL_FACTOR
    if extra and not trim:
        shorter = len(frames) - extra
        raise ArgumentError(f"{what} has {len(frames)} frames; the causal VAE takes 1 + {TEMPORAL_FACTOR}k "
                            f"({shorter} or {shorter + TEMPORAL_FACTOR}). Pass trim=True (sample.py: --trim) to drop "
                            f"the first {extra}")
    return Clip(pixels=frames[extra:])


def _latents(latents: np.ndarray, what: str) -> Clip:
    if latents.ndim == 4:
        latents = latents[None]
    if latents.ndim != 5 or not np.issubdtype(latents.dtype, np.floating):
        raise ArgumentError(f"{what} must be float [T, h, w, C] or [B, T, h, w, C]; got {latents.dtype} "
                            f"{latents.shape}")
    if latents.shape[1] < 1:
        raise ArgumentError(f"{what} have no frames: shape {latents.shape}")
    if not np.isfinite(latents).all():
        raise ArgumentError(f"{what} contain NaN or infinite values")
    return Clip(latents=latents.astype(np.float32))


def save_latents(path: str, latents: np.ndarray) -> None:
    """Writes DiT latents `[B, T, h, w, C]` to a `.npy` file atomically: a kill leaves the old file or the new one."""
    with atomic_file(path) as temporary:
        np.save(temporary, latents)
