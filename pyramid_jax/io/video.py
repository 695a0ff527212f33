"""Writing generated frames `[F, H, W, 3]` uint8: mp4 (H.264 via imageio-ffmpeg), gif, an image (a video becomes
its frame strip), or PNG frames."""

from __future__ import annotations

import os
import warnings

import numpy as np

from pyramid_jax.errors import ArgumentError
from pyramid_jax.io import atomic

FPS = 24  # the released models' frame rate
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


OUTPUT_SUFFIXES = (".mp4", ".gif", *IMAGE_SUFFIXES, "")
STRIP_MIN_HEIGHT = 128  # frame strips scale smaller frames up by a whole factor (nearest) to at least this height
STRIP_GAP = 4  # white pixels between the frames of a strip


def check_output_path(path: str, name: str = "output") -> None:
    """Fails, naming the argument `name`, unless `save_frames` can write `path` (suffix, folder, permissions)."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ArgumentError(f"{name} {path}: unknown suffix {suffix!r}; use .mp4, .gif, {', '.join(IMAGE_SUFFIXES)} "
                            "or no suffix (a folder of PNG frames)")
    atomic.check_writable(path, name, folder=suffix == "")


def save_frames(frames: np.ndarray, path: str, fps: int = FPS) -> str:
    """Writes `frames` by the suffix of `path` (.mp4, .gif, an image suffix: the frame, or all frames side by side;
    none: a folder of `frame_00000.png`) atomically and returns the path written; an mp4 is re-read and its frames
    counted before it replaces anything."""
    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [F, H, W, 3], got {frames.dtype} {frames.shape}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ArgumentError(f"unknown output suffix {suffix!r}: use .mp4, .gif, {', '.join(IMAGE_SUFFIXES)} or a "
                            "folder")
    if suffix == "":
        with atomic.atomic_directory(path, overwrite=True) as tmp:
            for i, frame in enumerate(frames):
                Image.fromarray(frame).save(os.path.join(tmp, f"frame_{i:05d}.png"))
        return path
    with atomic.atomic_file(path, verify=_mp4_check(len(frames)) if suffix == ".mp4" else None) as tmp:
        if suffix == ".mp4":
            _write_mp4(frames, tmp, fps)
        elif suffix == ".gif":
            images = [Image.fromarray(f) for f in frames]
            images[0].save(tmp, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        else:
            Image.fromarray(frames[0] if len(frames) == 1 else frame_strip(frames)).save(tmp)
    return path


def frame_strip(frames: np.ndarray) -> np.ndarray:
    """Frames `[F, H, W, 3]` side by side, `STRIP_GAP` white pixels apart, each scaled up by the whole factor that
    makes it at least `STRIP_MIN_HEIGHT` high (64x64 demo frames: 2x), so that small videos can be looked at."""
    scale = -(-STRIP_MIN_HEIGHT // frames.shape[1])
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    f, h, w, c = frames.shape
    strip = np.full((h, f * w + (f - 1) * STRIP_GAP, c), 255, np.uint8)
    for i, frame in enumerate(frames):
        strip[:, i * (w + STRIP_GAP):i * (w + STRIP_GAP) + w] = frame
    return strip


def _write_mp4(frames: np.ndarray, path: str, fps: int) -> None:
    import imageio.v2 as imageio

    with warnings.catch_warnings():  # the ffmpeg subprocess trips JAX's fork warning; ffmpeg never runs JAX
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        imageio.mimwrite(path, list(frames), fps=fps, codec="libx264", quality=8, macro_block_size=8)


def _mp4_check(count: int):
    def verify(path: str) -> None:
        import imageio.v2 as imageio

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            with imageio.get_reader(path, format="ffmpeg") as reader:
                read = sum(1 for _ in reader)
        if read != count:
            raise OSError(f"the written video has {read} readable frame(s), not {count}")

    return verify
