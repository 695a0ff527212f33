"""What one annotation record contributes to a batch, by data source.

A reader's `key(record)` validates the record's file cheaply (headers, video metadata) and returns its bucket key;
`load(record, key)` reads the sample in the shape the key promises. Both raise DataError naming the file.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from pyramid_jax.errors import ArgumentError
from pyramid_jax.sampling import TextConditioning
from pyramid_jax.text.conditioning import cut_text
from pyramid_jax.training.data.buckets import closest_resolution
from pyramid_jax.training.data.errors import DataError
from pyramid_jax.training.data.frames import latent_frames, pixel_frames, read_frames, resize_crop, video_info
from pyramid_jax.training.data.storage import latent_shape, load_latents, load_text, text_shapes

SPATIAL_FACTOR = 8  # VAE pixels per latent row or column


def field(record: dict, name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise DataError(f"record {json.dumps(record)[:120]}", f"has no `{name}` field")
    return value


def media(record: dict) -> str:
    """The record's `video`, or its `image` (the reference's image annotations; decoded as a 1-frame video)."""
    return field(record, "video" if "video" in record or "image" not in record else "image")


class LatentReader:
    """Pre-extracted latents (`latent`): raw float32 `[T, h, w, C]`, T cut to `max_frames`."""

    def __init__(self, max_frames: int, channels: int):
        self.max_frames, self.channels = max_frames, channels

    def key(self, record: dict) -> tuple[int, ...]:
        path = field(record, "latent")
        frames, height, width, channels = latent_shape(path)
        if channels != self.channels:
            raise DataError(path, f"latents have {channels} channels, the DiT takes {self.channels}")
        return min(frames, self.max_frames), height, width

    def load(self, record: dict, key: tuple[int, ...]) -> np.ndarray:
        return load_latents(record["latent"], key[0])


class VideoReader:
    """Videos (`video`, optional `frames`) or images (`image`) for encoding: uint8 `[1 + 8(T-1), 8h, 8w, 3]` at
    the closest of `resolutions` (pixel `(height, width)` pairs, multiples of 8), T cut to `max_frames`."""

    def __init__(self, max_frames: int, resolutions: Sequence[tuple[int, int]]):
        if not resolutions or any(len(r) != 2 or r[0] % SPATIAL_FACTOR or r[1] % SPATIAL_FACTOR
                                  for r in resolutions):
            raise ValueError(f"resolutions must be (height, width) pairs of multiples of {SPATIAL_FACTOR}, "
                             f"got {resolutions}")
        self.max_frames, self.resolutions = max_frames, tuple(tuple(r) for r in resolutions)

    def key(self, record: dict) -> tuple[int, ...]:
        frames, height, width = video_info(media(record))
        if "frames" in record:
            frames = min(frames, len(record["frames"]))
        target_height, target_width = closest_resolution(height, width, self.resolutions)
        return (min(latent_frames(frames), self.max_frames), target_height // SPATIAL_FACTOR,
                target_width // SPATIAL_FACTOR)

    def load(self, record: dict, key: tuple[int, ...]) -> np.ndarray:
        frames, height, width = key[:3]
        pixels = read_frames(media(record), pixel_frames(frames), record.get("frames"))
        return resize_crop(pixels, SPATIAL_FACTOR * height, SPATIAL_FACTOR * width)


class TextReader:
    """Pre-extracted text features (`text_fea`, `features=True`) or the caption (`text`) to encode on the fly."""

    def __init__(self, features: bool, tokens: int = 0):
        self.features, self.tokens = features, tokens  # tokens > 0: features cut to that many positions

    def key(self, record: dict) -> tuple[tuple[int, ...], ...]:
        if self.features:
            embeds, mask, pooled = text_shapes(field(record, "text_fea"))
            if self.tokens:
                embeds, mask = (min(embeds[0], self.tokens), *embeds[1:]), (min(mask[0], self.tokens),)
            return embeds, mask, pooled
        field(record, "text")
        return ()

    def load(self, record: dict) -> TextConditioning | str:
        if not self.features:
            return record["text"]
        return trim_text(load_text(record["text_fea"]), self.tokens, record["text_fea"])


def trim_text(text: TextConditioning, tokens: int, what: str) -> TextConditioning:
    """One caption's features `text` (embeds `[L, J]`, mask `[L]`) cut to their first `tokens` positions (0: as
    they are); a token beyond them (mask 1), or more positions than they have, is an error naming `what`."""
    if not tokens:
        return text
    try:
        return cut_text(text, tokens, "data.text_tokens")
    except ArgumentError as error:
        raise DataError(what, f"{error} (0 keeps every position)") from None
