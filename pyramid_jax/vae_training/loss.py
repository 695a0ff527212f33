"""The VAE's generator loss (vae_spec.md §5.1), on videos `[B, T, H, W, 3]` in [-1, 1].

Per frame: `nll = pixel_weight * mean_{H,W,C} (x - recon)^2 + perceptual_weight * LPIPS(x, recon)`; the reference
divides by `exp(logvar)` and adds `logvar` with a `logvar` that no optimizer updates (it stays 0), so that is left
out. With `foreground_weight` the MSE is a weighted mean whose pixels far from `background` weigh more, and
`first_frame_weight` weighs frame 0 in the mean over frames (`VAELossConfig`). The loss is the mean of `nll` over all
frames plus `kl_weight` times the posterior's KL (summed over
T, H, W, averaged over clips and latent channels).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from pyramid_jax.vae.posterior import DiagonalGaussian
from pyramid_jax.vae_training.config import VAELossConfig

# (frames [N, H, W, 3], reconstructed frames [N, H, W, 3]) -> per-frame distances [N]
Perceptual = Callable[[jax.Array, jax.Array], jax.Array]


def vae_loss(video: jax.Array, recon: jax.Array, posterior: DiagonalGaussian, config: VAELossConfig,
             perceptual: Perceptual | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(total loss, its terms: `nll`, `mse`, `kl`, and `lpips` when used)."""
    squared = jnp.square(video - recon)
    mse = jnp.mean(squared, axis=(2, 3, 4))  # [B, T]
    error = mse
    if config.foreground_weight > 0:
        background = jnp.asarray(config.background, jnp.float32) / 127.5 - 1  # the [-1, 1] pixel range
        distance = jnp.linalg.norm(video - background, axis=-1, keepdims=True)  # [B, T, H, W, 1]
        weight = 1 + config.foreground_weight * (distance > config.foreground_distance / 127.5)
        error = jnp.sum(weight * squared, axis=(2, 3, 4)) / (squared.shape[-1] * jnp.sum(weight, axis=(2, 3, 4)))
    nll = config.pixel_weight * error
    terms = {}
    if config.perceptual_weight > 0:
        if perceptual is None:
            raise ValueError("loss.perceptual_weight > 0 needs the LPIPS network (set `lpips` to its weights)")
        frames = video.shape[0] * video.shape[1]
        distance = perceptual(video.reshape(frames, *video.shape[2:]), recon.reshape(frames, *recon.shape[2:]))
        distance = distance.reshape(mse.shape)
        nll = nll + config.perceptual_weight * distance
        terms["lpips"] = jnp.mean(distance)
    kl = jnp.mean(posterior.kl())
    frames = jnp.ones(nll.shape[1], jnp.float32).at[0].set(config.first_frame_weight)
    loss = jnp.mean(nll @ frames) / jnp.sum(frames) + config.kl_weight * kl
    return loss, dict(terms, nll=jnp.mean(nll), mse=jnp.mean(mse), kl=kl)
