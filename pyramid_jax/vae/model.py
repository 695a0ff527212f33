"""`CausalVideoVAE` and its encode/decode API with the reference's streaming and tiling options (vae_spec.md §4)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pyramid_jax.parallel.compiled import ModelProgram, PlacedModel, place_inputs
from pyramid_jax.vae.config import VAEConfig
from pyramid_jax.vae.conv import CausalConv3d, TimeCache
from pyramid_jax.vae.decoder import Decoder
from pyramid_jax.vae.encoder import Encoder
from pyramid_jax.vae.posterior import DiagonalGaussian
from pyramid_jax.vae.streaming import stream
from pyramid_jax.vae.tiling import check_tile_size, decode_grid, encode_grid, tiled

# Logical axes of videos and latents `[B, T, H, W, C]`: samples over data/fsdp, image rows over `sequence`.
VIDEO_AXES = ("batch", None, "height", None, None)


class CausalVideoVAE(nnx.Module):
    """Pyramid Flow's causal video VAE (attribute names mirror the torch state dict).

    Videos `[B, 1 + 8k, H, W, 3]` in [-1, 1] <-> latents `[B, 1 + k, H/8, W/8, z]`: frame 0 is coded on its own
    (an image is a 1-frame video), then every 8 frames give one latent frame.
    """

    def __init__(self, config: VAEConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        z = config.latent_channels
        self.config = config
        self.dtype = dtype
        self.mesh = None  # set by `load_vae`: inputs are then split by VIDEO_AXES over it
        self.encoder = Encoder(config, **kw)
        self.quant_conv = CausalConv3d(2 * z, 2 * z, 1, **kw)
        self.post_quant_conv = CausalConv3d(z, z, 1, **kw)
        self.decoder = Decoder(config, **kw)

    def encode_clip(self, x: jax.Array, cache: TimeCache | None = None) -> jax.Array:
        """Pixels `[B, T, H, W, 3]` -> moments `[B, T', H', W', 2z]` for a whole clip or one streamed chunk."""
        return self.quant_conv(self.encoder(x.astype(self.dtype), cache))

    def decode_clip(self, z: jax.Array, cache: TimeCache | None = None, is_init_image: bool = True) -> jax.Array:
        """Latents `[B, L, h, w, z]` -> pixels `[B, T, 8h, 8w, 3]` for a whole clip or one streamed chunk."""
        return self.decoder(self.post_quant_conv(z.astype(self.dtype)), cache, is_init_image)

    def encode(self, video: jax.Array, *, temporal_chunk: bool = False, window_size: int = 16,
               tile_sample_min_size: int | None = None, is_init_image: bool = True) -> DiagonalGaussian:
        """The posterior of `video` `[B, 1 + 8k, H, W, 3]` (pixels in [-1, 1], H and W multiples of 8).

        `temporal_chunk` streams the clip in `window_size`-frame chunks (a multiple of 8) with the same result;
        `tile_sample_min_size` (pixels) turns on overlapping spatial tiles for frames larger than one tile.
        `is_init_image` is accepted for parity with the reference, whose encoder output does not depend on it.
        """
        del is_init_image
        cfg, f = self.config, self.config.downsample_scale
        _check_array(video, "video", cfg.encoder_in_channels)
        t, h, w = video.shape[1:4]
        if (t - 1) % f:
            raise ValueError(f"video has {t} frames; the VAE takes 1 + {f}k frames (frame 0 alone, then {f} per "
                             "latent frame)")
        if h % f or w % f:
            raise ValueError(f"video frames are {h}x{w}; height and width must be multiples of {f}")
        if temporal_chunk:
            _check_window(window_size, f)
        if tile_sample_min_size is not None:
            check_tile_size(tile_sample_min_size, f)
        run = functools.partial(encode_program, PlacedModel(self, self.mesh), temporal_chunk=temporal_chunk,
                                window_size=window_size if temporal_chunk else None)
        if tile_sample_min_size is not None and max(h, w) > tile_sample_min_size:
            moments = tiled(lambda part: run(self.place(part)), video, encode_grid(tile_sample_min_size, f))
        else:
            moments = run(self.place(video))
        return DiagonalGaussian.from_moments(moments.astype(jnp.float32))

    def decode(self, latents: jax.Array, *, is_init_image: bool = True, temporal_chunk: bool = False,
               window_size: int = 2, tile_sample_min_size: int | None = None) -> jax.Array:
        """Pixels `[B, T, 8h, 8w, 3]` (float32, unclamped) of latents `[B, L, h, w, z]`; T = 8L - 7.

        `is_init_image=False` (plain decode only, as in the reference) keeps every frame: T = 8L. `temporal_chunk`
        streams `window_size` latent frames at a time with the same result; `tile_sample_min_size` (pixels) turns
        on overlapping spatial tiles for latents larger than one tile.
        """
        f = self.config.downsample_scale
        _check_array(latents, "latents", self.config.latent_channels)
        if temporal_chunk:
            _check_window(window_size, 1)
        if tile_sample_min_size is not None:
            check_tile_size(tile_sample_min_size, f)
        tiles = tile_sample_min_size is not None and max(latents.shape[2:4]) > tile_sample_min_size // f
        # As in the reference, tiles and streamed clips always start with an init image.
        run = functools.partial(decode_program, PlacedModel(self, self.mesh),
                                is_init_image=is_init_image or tiles or temporal_chunk, temporal_chunk=temporal_chunk,
                                window_size=window_size if temporal_chunk else None)
        if tiles:
            video = tiled(lambda part: run(self.place(part)), latents, decode_grid(tile_sample_min_size, f))
        else:
            video = run(self.place(latents))
        return video.astype(jnp.float32)

    def place(self, x: jax.Array) -> jax.Array:
        """`x` (host or device array) split over the mesh by VIDEO_AXES; as is without a mesh."""
        return place_inputs(x, self.mesh, VIDEO_AXES)


# Inference changes no state, so nothing but the result comes back.
@functools.partial(ModelProgram, static_argnames=("temporal_chunk", "window_size"))
def encode_program(model: CausalVideoVAE, x: jax.Array, temporal_chunk: bool, window_size: int | None) -> jax.Array:
    if not temporal_chunk:
        return model.encode_clip(x)

    def step(chunk, history):
        cache = TimeCache(history)
        return model.encode_clip(chunk, cache), cache.finish()

    return stream(step, x, window_size)


@functools.partial(ModelProgram, static_argnames=("is_init_image", "temporal_chunk", "window_size"))
def decode_program(model: CausalVideoVAE, z: jax.Array, is_init_image: bool, temporal_chunk: bool,
                   window_size: int | None) -> jax.Array:
    if not temporal_chunk:
        return model.decode_clip(z, None, is_init_image)

    def step(chunk, history):
        cache = TimeCache(history)  # the first chunk starts the clip; later ones continue it (no frame dropped)
        return model.decode_clip(chunk, cache, is_init_image=history is None), cache.finish()

    return stream(step, z, window_size)


def _check_array(x, name: str, channels: int) -> None:
    shape = np.shape(x)
    if len(shape) != 5 or shape[-1] != channels or 0 in shape:
        raise ValueError(f"{name} must be [B, T, H, W, {channels}] (channels last), got shape {tuple(shape)}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"{name} must be floating point, got {jnp.result_type(x)}")


def _check_window(window_size, multiple: int) -> None:
    if not isinstance(window_size, (int, np.integer)) or window_size < 1 or window_size % multiple:
        raise ValueError(f"window_size must be a positive multiple of {multiple}, got {window_size!r}")
