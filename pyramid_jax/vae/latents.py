"""The pipeline's per-frame latent normalisation (pipeline_spec.md §2, vae_spec.md §4.5).

The DiT sees `(z - shift) * scale`: latent frame 0 (the image latent) uses image constants that differ between the
two DiT families, later frames use video constants shared by both. The config's `scaling_factor` is not used.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class LatentScaling:
    image_shift: float
    image_scale: float
    video_shift: float
    video_scale: float


VIDEO_SHIFT, VIDEO_SCALE = -0.2343, 1 / 3.0986
LATENT_SCALINGS: dict[str, LatentScaling] = {
    "pyramid_flux": LatentScaling(-0.04, 1 / 1.8726, VIDEO_SHIFT, VIDEO_SCALE),  # miniFLUX
    "pyramid_mmdit": LatentScaling(0.1490, 1 / 1.8415, VIDEO_SHIFT, VIDEO_SCALE),  # SD3
}


def _scaling(model_name: str) -> LatentScaling:
    if model_name not in LATENT_SCALINGS:
        raise ValueError(f"unknown model_name {model_name!r}; choose one of {sorted(LATENT_SCALINGS)}")
    return LATENT_SCALINGS[model_name]


def _per_frame(z: jax.Array, image, video) -> jax.Array:
    """Applies `image` to latent frame 0 and `video` to the rest of `z` `[B, T, H, W, C]`."""
    return jnp.concatenate([image(z[:, :1]), video(z[:, 1:])], axis=1)


def normalize_latents(z: jax.Array, model_name: str) -> jax.Array:
    """VAE latents `[B, T, H, W, C]` -> DiT latents for `model_name` ('pyramid_flux' or 'pyramid_mmdit')."""
    s = _scaling(model_name)
    return _per_frame(z, lambda x: (x - s.image_shift) * s.image_scale, lambda x: (x - s.video_shift) * s.video_scale)


def denormalize_latents(z: jax.Array, model_name: str) -> jax.Array:
    """Inverse of `normalize_latents`: DiT latents `[B, T, H, W, C]` -> VAE latents."""
    s = _scaling(model_name)
    return _per_frame(z, lambda x: x / s.image_scale + s.image_shift, lambda x: x / s.video_scale + s.video_shift)
