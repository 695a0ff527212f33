"""The `data` group of a training config: where batches come from and how they are read."""

from __future__ import annotations

import dataclasses
import enum

from pyramid_jax.training.data.errors import OnError


class DataSource(str, enum.Enum):
    SYNTHETIC = "synthetic"  # random latents and text features of the sizes below (smoke runs, benchmarks)
    LATENTS = "latents"  # the annotation's pre-extracted `latent` and `text_fea` files (tools/extract_*.py)
    VIDEOS = "videos"  # the annotation's `video` files, decoded and VAE-encoded on the fly (small runs)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    source: DataSource = DataSource.SYNTHETIC
    annotation: str = ""  # jsonl: one {"video", "text", "latent", "text_fea"} object per line (latents, videos)
    batch_size: int = 4  # global samples per step, a multiple of sum(sample_ratios) x grad_accum
    frames: int = 16  # latent frames per clip: synthetic clips have this many, longer real clips are cut to it
    height: int = 48  # synthetic latent rows (384p: 48, 768p: 96)
    width: int = 80  # synthetic latent columns (384p: 80, 768p: 160)
    text_length: int = 128  # synthetic text tokens
    resolutions: tuple[tuple[int, int], ...] = ((384, 640),)  # videos: pixel (height, width) buckets
    text_features: bool = True  # read `text_fea` files; false: encode each `text` with the text encoder
    null_text: str = ""  # the "" encoding (.npz) for caption dropout; empty: encode "" with the text encoder
    on_error: OnError = OnError.FAIL  # a missing or broken file: fail naming it, or skip (logged and counted)
    read_threads: int = 4
    prefetch: int = 4  # batches read ahead (at least read_threads, or some threads idle)
    # > 0: pre-extracted text features are cut to their first `text_tokens` positions (every caption's tokens must
    # fit). The DiT masks padding out of attention, so this changes no number it computes, only the cost: the
    # reference pads T5 to 128 positions, most of a short-caption step's sequence.
    text_tokens: int = 0

    def __post_init__(self):
        if self.text_tokens < 0:
            raise ValueError(f"data.text_tokens must be >= 0 (0 keeps every position), got {self.text_tokens}")
        if self.text_tokens and not (self.source is DataSource.LATENTS and self.text_features):
            raise ValueError("data.text_tokens cuts pre-extracted text features: it needs data.source=latents and "
                             "data.text_features=True")
