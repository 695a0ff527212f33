"""Writing generated frames `[F, H, W, 3]` uint8: mp4 (H.264 via imageio-ffmpeg), gif, an image (a video becomes
its frame strip), or PNG frames."""

from __future__ import annotations

import os
import warnings

import numpy as np

FPS = 24  # the released models' frame rate
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def save_frames(frames: np.ndarray, path: str, fps: int = FPS) -> str:
    """Writes `frames` by the suffix of `path` (.mp4, .gif, an image suffix: the frame, or all frames side by side;
    none: a folder of `frame_00000.png`) and returns the path written."""
    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [F, H, W, 3], got {frames.dtype} {frames.shape}")
    suffix = os.path.splitext(path)[1].lower()
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    if suffix == ".mp4":
        import imageio.v2 as imageio

        with warnings.catch_warnings():  # the ffmpeg subprocess trips JAX's fork warning; ffmpeg never runs JAX
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            imageio.mimwrite(path, list(frames), fps=fps, codec="libx264", quality=8, macro_block_size=8)
    elif suffix == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    elif suffix in IMAGE_SUFFIXES:
        Image.fromarray(np.concatenate(list(frames), axis=1)).save(path)
    elif suffix == "":
        os.makedirs(path, exist_ok=True)
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(os.path.join(path, f"frame_{i:05d}.png"))
    else:
        raise ValueError(f"unknown output suffix {suffix!r}: use .mp4, .gif, {', '.join(IMAGE_SUFFIXES)} or a folder")
    return path
