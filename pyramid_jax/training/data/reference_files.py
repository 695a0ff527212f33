"""The reference's pre-extracted files (`torch.save` `.pt`, pipeline_spec.md §6b), read without torch.

latent `.pt`: one clip's raw latents `[1, C, T, h, w]` in torch's layout (bfloat16 from the reference's
    extraction). Read as ours (see storage.py): float32 `[T, h, w, C]`, the batch axis dropped.
text `.pt`: `{"prompt_embed": [1, L, J], "prompt_attention_mask": [1, L], "pooled_prompt_embed": [1, P]}`. Read as
    one caption's `TextConditioning` without the batch axis.
"""

from __future__ import annotations

import numpy as np

from pyramid_jax.convert.torch_file import read_torch_file
from pyramid_jax.sampling import TextConditioning
from pyramid_jax.training.data.errors import DataError, reading

TEXT_FIELDS = ("prompt_embed", "prompt_attention_mask", "pooled_prompt_embed")


def is_reference_file(path: str) -> bool:
    return path.endswith(".pt")


def _latents(path: str, arrays: bool):
    with reading(path, "latent file"):
        latents = read_torch_file(path, arrays)
    shape = getattr(latents, "shape", None)
    if shape is None or len(shape) != 5 or shape[0] != 1 or 0 in shape:
        raise DataError(path, f"a reference latent file holds one tensor [1, C, T, h, w], found "
                              f"{shape if shape is not None else type(latents).__name__}")
    return latents


def reference_latent_shape(path: str) -> tuple[int, int, int, int]:
    """`(T, h, w, C)` from the file's pickle (no tensor data read)."""
    _, channels, frames, height, width = _latents(path, arrays=False).shape
    return frames, height, width, channels


def load_reference_latents(path: str, frames: int) -> np.ndarray:
    """The first `frames` latent frames, float32 `[frames, h, w, C]`."""
    return np.ascontiguousarray(np.moveaxis(_latents(path, arrays=True)[0, :, :frames], 0, -1), np.float32)


def _text(path: str, arrays: bool) -> tuple:
    with reading(path, "text feature file"):
        features = read_torch_file(path, arrays)
    if not isinstance(features, dict) or any(name not in features for name in TEXT_FIELDS):
        found = sorted(features) if isinstance(features, dict) else type(features).__name__
        raise DataError(path, f"a reference text feature file holds a dict with {TEXT_FIELDS}, found {found}")
    embeds, mask, pooled = (features[name] for name in TEXT_FIELDS)
    shapes = [tuple(getattr(x, "shape", ())) for x in (embeds, mask, pooled)]
    if len(shapes[0]) != 3 or shapes[1] != shapes[0][:2] or len(shapes[2]) != 2 or shapes[0][0] != 1 \
            or shapes[2][0] != 1:
        raise DataError(path, f"text features must be prompt_embed [1, L, J], prompt_attention_mask [1, L] and "
                              f"pooled_prompt_embed [1, P]; got {shapes}")
    return embeds, mask, pooled


def reference_text_shapes(path: str) -> tuple[tuple[int, ...], ...]:
    """The shapes of embeds `[L, J]`, mask `[L]` and pooled `[P]` (no tensor data read)."""
    return tuple(tuple(x.shape[1:]) for x in _text(path, arrays=False))


def load_reference_text(path: str) -> TextConditioning:
    """One caption's encoding: embeds float32 `[L, J]`, mask int32 `[L]`, pooled float32 `[P]`."""
    embeds, mask, pooled = _text(path, arrays=True)
    return TextConditioning(embeds[0].astype(np.float32), mask[0].astype(np.int32), pooled[0].astype(np.float32))
