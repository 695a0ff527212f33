"""On-disk format of pre-extracted training data (written by tools/extract_*.py, read by the data pipeline).

latent file, `.npy`: one clip's raw VAE posterior sample, `[T, h, w, C]` channels last, float16 or float32. Not
    normalised: the DiT family's per-frame shift and scale are applied at training time, as in the reference.
    A plain .npy so the pipeline can read the shape from the header (for bucketing) without loading the data.
text file, `.npz`: one caption's encoding, `embeds [L, J]`, `mask [L]` int32 (1 = token) and `pooled [P]`.
    The extraction also writes `null_text.npz`, the encoding of "" that caption dropout needs (the reference
    never precomputes it: issues #160, #181, #257).
Writes go to a temporary name that is then renamed, so an interrupted extraction never leaves a partial file.
The readers also take the reference's own `.pt` files in either role (reference_files.py).
"""

from __future__ import annotations

import os
import threading
import zipfile

import numpy as np

from pyramid_jax.io.atomic import atomic_file
from pyramid_jax.sampling import TextConditioning
from pyramid_jax.training.data.errors import DataError, reading
from pyramid_jax.training.data.reference_files import (is_reference_file, load_reference_latents,
                                                       load_reference_text, reference_latent_shape,
                                                       reference_text_shapes)

TEXT_KEYS = ("embeds", "mask", "pooled")
NULL_TEXT_FILE = "null_text.npz"
# numpy parses every .npy header with `ast.literal_eval`; on CPython 3.11.7 (the development box's) two threads
# building ASTs at once can fail with "AST constructor recursion depth mismatch" (CPython gh-106905), which killed demo
# training runs with two reader threads. The files are small, so reads hold this lock around header and data alike.
NUMPY_READS = threading.Lock()


def _replace_atomically(path: str, write) -> None:
    with atomic_file(path) as temporary, open(temporary, "wb") as f:
        write(f)


def save_latents(path: str, latents: np.ndarray) -> None:
    """Writes raw latents `[T, h, w, C]`."""
    if latents.ndim != 4:
        raise ValueError(f"latents must be [T, h, w, C], got shape {latents.shape}")
    _replace_atomically(path, lambda f: np.save(f, latents))


def latent_shape(path: str) -> tuple[int, int, int, int]:
    """`(T, h, w, C)` from the header; a missing, truncated or malformed file raises a DataError."""
    if is_reference_file(path):
        return reference_latent_shape(path)
    with reading(path, "latent file"), NUMPY_READS:
        shape = np.load(path, mmap_mode="r").shape
    if len(shape) != 4 or 0 in shape:
        raise DataError(path, f"latents must be [T, h, w, C], the file holds shape {shape}")
    return shape


def load_latents(path: str, frames: int) -> np.ndarray:
    """The first `frames` latent frames, float32 `[frames, h, w, C]`."""
    if is_reference_file(path):
        return load_reference_latents(path, frames)
    with reading(path, "latent file"), NUMPY_READS:
        return np.asarray(np.load(path, mmap_mode="r")[:frames], np.float32)


def save_text(path: str, text: TextConditioning) -> None:
    """Writes one caption's encoding: `embeds [L, J]`, `mask [L]`, `pooled [P]`."""
    arrays = dict(zip(TEXT_KEYS, (np.asarray(x) for x in text)))
    arrays["mask"] = arrays["mask"].astype(np.int32)
    _replace_atomically(path, lambda f: np.savez(f, **arrays))


def text_shapes(path: str) -> tuple[tuple[int, ...], ...]:
    """The shapes of `embeds`, `mask`, `pooled` from the array headers inside the .npz (no data read)."""
    if is_reference_file(path):
        return reference_text_shapes(path)
    shapes = []
    with reading(path, "text feature file"), NUMPY_READS, zipfile.ZipFile(path) as archive:
        for key in TEXT_KEYS:
            with archive.open(f"{key}.npy") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shapes.append(read(f)[0])
    embeds, mask, pooled = shapes
    if len(embeds) != 2 or mask != embeds[:1] or len(pooled) != 1:
        raise DataError(path, f"text features must be embeds [L, J], mask [L], pooled [P]; got {shapes}")
    return tuple(shapes)


def load_text(path: str) -> TextConditioning:
    """One caption's encoding as numpy: embeds float32 `[L, J]`, mask int32 `[L]`, pooled float32 `[P]`."""
    if is_reference_file(path):
        return load_reference_text(path)
    with reading(path, "text feature file"), NUMPY_READS, np.load(path) as f:
        return TextConditioning(f["embeds"].astype(np.float32), f["mask"].astype(np.int32),
                                f["pooled"].astype(np.float32))
