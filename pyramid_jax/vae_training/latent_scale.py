"""Fit a VAE trained from scratch to its DiT family's fixed latent normalization.

A DiT sees `(z - shift) * scale` of VAE latents with its family's constants (`dit/families.py`), chosen for the
released VAE. A VAE trained here codes to latents of its own spread: the demo VAE's came out with a standard
deviation of ~0.4 after that normalization, so the flow's noise drowned them early in every stage and fine detail
(a square's corners) was decided only in the last steps. `fold_latent_affine` makes the VAE code `a * z + b`
instead of `z`, exactly: the encoder's `quant_conv` maps to the new latents and `post_quant_conv` maps back, so
reconstructions are unchanged and only the latents the DiT learns move. `standardizing_affine` picks `a` and `b`;
`standardize_vae_folder` does both to a VAE model folder (`tools/build_shapes_demo.py` runs it before the DiT's
latents are extracted).
"""

from __future__ import annotations

import os
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pyramid_jax.config import read_json
from pyramid_jax.dit.families import get_family
from pyramid_jax.io import weights
from pyramid_jax.io.atomic import atomic_directory
from pyramid_jax.training.data.frames import to_unit_range
from pyramid_jax.vae.load import load_vae
from pyramid_jax.vae.model import CausalVideoVAE


def standardizing_affine(latents: Iterable[jax.Array], family: str) -> tuple[float, np.ndarray]:
    """`(a, b)`: the scale and per-channel shift after which `latents` (VAE latents `[B, 1 + k, h, w, z]`, e.g.
    the posterior means of training clips) reach the DiT of `family` with zero mean per channel and a standard
    deviation of one, pooled over the image frame and the video frames (each normalized with its constants)."""
    scaling = get_family(family).latents
    image, video = [], []
    for z in latents:
        z = np.asarray(z, np.float64)
        image.append(z[:, :1].reshape(-1, z.shape[-1]))
        video.append(z[:, 1:].reshape(-1, z.shape[-1]))
    parts = [(np.concatenate(image), scaling.image_shift, scaling.image_scale)]
    if sum(len(v) for v in video):
        parts.append((np.concatenate(video), scaling.video_shift, scaling.video_scale))
    # Each part normalized is scale * (a z + b - shift); its variance is (scale a)^2 var(z), whatever b is.
    variance = np.mean([(scale ** 2) * z.var(axis=0).mean() for z, _, scale in parts])
    a = float(1.0 / np.sqrt(variance))
    # Zero mean per channel, averaged over the parts: mean_p(scale (a m + b - shift)) = 0.
    offsets = np.stack([scale * (a * z.mean(axis=0) - shift) for z, shift, scale in parts])
    b = -offsets.sum(axis=0) / sum(scale for _, _, scale in parts)
    return a, b.astype(np.float32)


def fold_latent_affine(vae: CausalVideoVAE, a: float, b: np.ndarray) -> None:
    """Makes `vae` code latents `a * z + b` (`b` per channel) in place of `z`, with the same reconstructions:
    `quant_conv`'s mean outputs are mapped forward (its log-variance moves by 2 log a) and `post_quant_conv`'s
    inputs back."""
    z = vae.config.latent_channels
    b = jnp.asarray(b, jnp.float32).reshape(z)
    if a <= 0 or not np.isfinite(a):
        raise ValueError(f"the scale must be a positive number, got {a}")
    quant, post = vae.quant_conv, vae.post_quant_conv
    kernel, bias = quant.kernel[...], quant.bias[...]
    quant.kernel[...] = kernel.at[..., :z].multiply(a)
    quant.bias[...] = bias.at[:z].set(a * bias[:z] + b).at[z:].add(2.0 * np.log(a))
    # post(z) = W z + c with z = (z' - b) / a: W' = W / a, c' = c - W' b.
    weight = post.kernel[...] / a  # [1, 1, 1, z_in, z_out]
    post.bias[...] = post.bias[...] - jnp.einsum("i,io->o", b, weight[0, 0, 0])
    post.kernel[...] = weight


def standardize_vae_folder(folder: str, videos: np.ndarray, family: str, batch: int = 32) -> tuple[float, np.ndarray]:
    """Rewrites the VAE model folder `folder` (atomically) with `fold_latent_affine` of the `standardizing_affine`
    of its posterior means on `videos` (uint8 `[N, 1 + 8k, H, W, 3]`, clips like its training data); returns
    `(a, b)`."""
    vae = load_vae(folder, jnp.float32)
    latents = [vae.encode(jnp.asarray(to_unit_range(videos[i:i + batch]))).mode() for i in range(0, len(videos), batch)]
    a, b = standardizing_affine(latents, family)
    fold_latent_affine(vae, a, b)
    arrays = [(path, np.asarray(var.get_value())) for path, var in nnx.to_flat_state(nnx.state(vae))]
    config = read_json(os.path.join(folder, weights.CONFIG_FILE))  # as it was: only the weights change
    with atomic_directory(folder, overwrite=True) as tmp:
        weights.write_converted(tmp, config, arrays)
    return a, b
