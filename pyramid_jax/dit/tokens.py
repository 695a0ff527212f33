"""Token assembly shared by both DiT families: clip layouts, 2x2 packing, positions, masks, row interleaving.

A DiT `sample` is a list of stages, each a list of clips `[B, T, H, W, C]` in time order whose last clip is the
one being denoised (dit_spec.md §0). Everything here depends on shapes only, so it runs host-side at trace time
and produces constants; nothing here is data-dependent.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pyramid_jax.layers.attention import TokenMask

# Logical axes of a token stream `[B, N, D]` between and inside the blocks: samples over the batch axes, tokens over
# `sequence` (sequence parallelism, when the mesh has it), the width replicated.
HIDDEN_AXES = ("batch", "length", None)


@dataclasses.dataclass(frozen=True)
class ClipGrid:
    """A clip's token grid after 2x2 patching: `frames x height x width` tokens."""

    frames: int
    height: int
    width: int

    @property
    def num_tokens(self) -> int:
        return self.frames * self.height * self.width


@dataclasses.dataclass(frozen=True)
class StageLayout:
    """The clips of one stage, oldest first; the last one is the current (denoised) clip."""

    clips: tuple[ClipGrid, ...]

    @classmethod
    def from_clips(cls, clips: Sequence[jax.Array], batch: int, channels: int, stage: int) -> "StageLayout":
        """Validates one stage's clips `[B, T, H, W, C]` and returns its layout."""
        if len(clips) == 0:
            raise ValueError(f"stage {stage} has no clips; every stage needs at least its current clip")
        grids = []
        for j, clip in enumerate(clips):
            where = f"stage {stage} clip {j}"
            if clip.ndim != 5:
                raise ValueError(f"{where}: expected [B, T, H, W, C], got shape {tuple(clip.shape)}")
            b, t, h, w, c = clip.shape
            if b != batch:
                raise ValueError(f"{where}: batch {b} differs from the first clip's batch {batch}")
            if c != channels:
                raise ValueError(f"{where}: {c} channels, the model takes {channels} (layout is [B, T, H, W, C])")
            if h % 2 or w % 2:
                raise ValueError(f"{where}: latent height and width must be even, got {h}x{w}")
            grids.append(ClipGrid(t, h // 2, w // 2))
        current = grids[-1]
        for j, g in enumerate(grids[:-1]):
            if g.height > current.height or g.width > current.width:
                raise ValueError(f"stage {stage} clip {j}: condition clip grid {g.height}x{g.width} is larger than "
                                 f"the current clip's {current.height}x{current.width}")
        return cls(tuple(grids))

    @property
    def current(self) -> ClipGrid:
        return self.clips[-1]

    @property
    def num_tokens(self) -> int:
        return sum(c.num_tokens for c in self.clips)

    @property
    def num_frames(self) -> int:
        return sum(c.frames for c in self.clips)

    def frame_ids(self) -> np.ndarray:
        """`[N]` integer temporal id of every token: frame counts run on across the stage's clips."""
        ids, offset = [], 0
        for c in self.clips:
            ids.append(np.repeat(np.arange(offset, offset + c.frames), c.height * c.width))
            offset += c.frames
        return np.concatenate(ids).astype(np.int32)

    def spatial_positions(self) -> np.ndarray:
        """`[N, 2]` float32 (row, column) of every token in the current clip's integer grid.

        Smaller condition clips get the current grid's coordinates linearly resampled (align_corners=False), i.e.
        fractional positions such as 2i + 0.5 for a 2x smaller clip.
        """
        cur = self.current
        out = []
        for c in self.clips:
            ys = resampled_grid(cur.height, c.height)
            xs = resampled_grid(cur.width, c.width)
            yy, xx = np.meshgrid(ys, xs, indexing="ij")
            rows = np.stack([yy.reshape(-1), xx.reshape(-1)], axis=-1)
            out.append(np.tile(rows, (c.frames, 1)))
        return np.concatenate(out).astype(np.float32)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["frame", "valid"],
                   meta_fields=["current_is_latest"])
@dataclasses.dataclass(frozen=True)
class ImageTokens:
    """Runtime temporal ids and validity of one stage's image tokens, so that one program serves a history padded
    to a fixed layout: frame `[N]` int32 (each below the layout's `num_frames`), valid `[N]` bool (False = pad).

    `current_is_latest` (static) promises that the current clip's frames are later than every other token's, text
    included: true when at least one real history frame precedes it (with none, it shares frame 0 with the text).
    The attention mask then carries the clips' `TokenMask.key_limits`.
    """

    frame: jax.Array
    valid: jax.Array
    current_is_latest: bool = False

    @classmethod
    def unpadded(cls, layout: StageLayout) -> ImageTokens:
        """Every token real, at the layout's own frame ids (constants)."""
        return cls(jnp.asarray(layout.frame_ids()), jnp.ones(layout.num_tokens, bool), len(layout.clips) > 1)

    @classmethod
    def leading_pad(cls, layout: StageLayout, pad_frames: jax.Array, real_history: bool = False) -> ImageTokens:
        """The layout's first `pad_frames` (a traced int) frames are padding: their tokens are masked out, and the
        real tokens' frame ids drop by `pad_frames`, i.e. equal those of the layout without the pad frames. Pad
        tokens keep the layout's ids, so that no token sees a later clip's. `real_history` promises that
        `pad_frames` is below the layout's history frames (at least one is real)."""
        ids = jnp.asarray(layout.frame_ids())
        real = ids >= pad_frames
        return cls(jnp.where(real, ids - pad_frames, ids), real, real_history and len(layout.clips) > 1)

    def lead(self, count: int) -> ImageTokens:
        """`count` masked tokens (frame 0) put in front, e.g. to make the token count a multiple of a mesh axis."""
        return dataclasses.replace(self, frame=jnp.concatenate([jnp.zeros(count, self.frame.dtype), self.frame]),
                                   valid=jnp.concatenate([jnp.zeros(count, bool), self.valid]))


def pad_front(x: jax.Array, count: int) -> jax.Array:
    """`[B, N, ...]` with `count` zero tokens put in front."""
    return jnp.pad(x, [(0, 0), (count, 0)] + [(0, 0)] * (x.ndim - 2))


def linear_taps(size: int, samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Torch's 1-D linear resampling of `size` points to `samples` (align_corners=False, no antialias).

    Returns (lo, hi, lam): output i is `(1 - lam[i]) * x[lo[i]] + lam[i] * x[hi[i]]`, weights in float32 as torch.
    """
    scale = np.float32(size) / np.float32(samples)
    src = np.maximum(scale * (np.arange(samples, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5),
                     np.float32(0))
    lo = np.floor(src).astype(np.int64)
    lam = src - lo.astype(np.float32)
    hi = np.minimum(lo + 1, size - 1)
    return lo, hi, lam


def resampled_grid(size: int, samples: int) -> np.ndarray:
    """`arange(size)` linearly resampled to `samples` points (torch `interpolate`, align_corners=False), float32."""
    if samples == size:
        return np.arange(size, dtype=np.float32)
    lo, hi, lam = linear_taps(size, samples)
    return ((np.float32(1) - lam) * lo.astype(np.float32) + lam * hi.astype(np.float32)).astype(np.float32)


def pack_2x2(x: jax.Array) -> jax.Array:
    """`[B, T, H, W, C]` -> `[B, T*(H/2)*(W/2), 4C]`; token (t, y, x), feature (p*2 + q)*C + c."""
    b, t, h, w, c = x.shape
    x = x.reshape(b, t, h // 2, 2, w // 2, 2, c).transpose(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, t * (h // 2) * (w // 2), 4 * c)


def unpack_2x2(tokens: jax.Array, grid: ClipGrid) -> jax.Array:
    """Inverse of `pack_2x2` for one clip: `[B, T*h*w, 4C]` -> `[B, T, 2h, 2w, C]`."""
    b, _, f = tokens.shape
    c = f // 4
    x = tokens.reshape(b, grid.frames, grid.height, grid.width, 2, 2, c).transpose(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, grid.frames, 2 * grid.height, 2 * grid.width, c)


def stage_rows(x: jax.Array, num_stages: int) -> list[jax.Array]:
    """Splits a per-(sample, stage) tensor whose row b*S + s belongs to stage s into S tensors with batch B."""
    if x.shape[0] % num_stages:
        raise ValueError(f"leading dim {x.shape[0]} is not batch x {num_stages} stages")
    x = x.reshape(x.shape[0] // num_stages, num_stages, *x.shape[1:])
    return [x[:, s] for s in range(num_stages)]


def text_image_mask(text_valid: jax.Array, image: ImageTokens, layout: StageLayout,
                    temporal_causal: bool) -> TokenMask:
    """Mask inputs for the joint sequence [text ; image]: text counts as frame 0; pad image tokens are invalid.

    When the current clip (the last image tokens) is the latest, the mask promises `key_limits`: the text (and the
    masked lead tokens) see no key of the current clip, and each history clip none of a later clip (a real frame's
    id grows with its place in the layout; pad frames keep their layout ids). The text sees the first real frame,
    whose place changes with the pad count, so the text rows take every history key."""
    b = text_valid.shape[0]
    image_valid = jnp.broadcast_to(image.valid, (b,) + image.valid.shape)
    valid = jnp.concatenate([text_valid.astype(bool), image_valid], axis=1)
    if not temporal_causal:
        return TokenMask(valid)
    frame = jnp.concatenate([jnp.zeros(text_valid.shape[1], jnp.int32), image.frame.astype(jnp.int32)])
    if not image.current_is_latest:
        return TokenMask(valid, frame)
    first = text_valid.shape[1] + image.frame.shape[0] - layout.num_tokens  # the first image token, after the lead
    ends = [int(e) for e in first + np.cumsum([c.num_tokens for c in layout.clips[:-1]])]
    return TokenMask(valid, frame, key_limits=((first, ends[-1]), *((e, e) for e in ends)))
