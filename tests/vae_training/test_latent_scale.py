"""Folding an affine map of latent space into the VAE (`vae_training/latent_scale.py`): exact, and standardizing."""

import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from pyramid_jax.config import read_json
from pyramid_jax.dit.families import normalize_latents
from pyramid_jax.io import weights
from pyramid_jax.training.data.frames import to_unit_range
from pyramid_jax.vae.config import VAEConfig
from pyramid_jax.vae.load import load_vae
from pyramid_jax.vae.model import CausalVideoVAE
from pyramid_jax.vae_training.latent_scale import (fold_latent_affine, standardize_vae_folder,
                                                     standardizing_affine)

TINY = dict(encoder_out_channels=4, decoder_in_channels=4, encoder_block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8), encoder_layers_per_block=(1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1), encoder_norm_num_groups=4, decoder_norm_num_groups=4)


def test_folded_vae_codes_the_affine_latents_and_reconstructs_the_same():
    vae = CausalVideoVAE(VAEConfig(**TINY), rngs=nnx.Rngs(0))
    for conv in (vae.quant_conv, vae.post_quant_conv):  # non-trivial biases, so the shift's bias terms matter
        conv.bias[...] = jnp.asarray(np.random.default_rng(1).normal(size=conv.bias.shape), jnp.float32)
    video = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 9, 16, 16, 3)), jnp.float32)
    before = vae.encode(video)
    recon = vae.decode(before.mode())
    a, b = 2.5, np.array([0.5, -1.0, 0.0, 2.0], np.float32)
    fold_latent_affine(vae, a, b)
    after = vae.encode(video)
    np.testing.assert_allclose(after.mean, a * before.mean + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(after.std, a * before.std, rtol=1e-5)
    np.testing.assert_allclose(vae.decode(after.mode()), recon, rtol=1e-5, atol=1e-5 * float(jnp.abs(recon).max()))


def test_standardizing_affine_gives_the_dit_zero_mean_unit_spread_latents():
    rng = np.random.default_rng(0)
    channel_means = rng.normal(size=6) * 2
    latents = [jnp.asarray(rng.normal(channel_means, 0.3, (4, 3, 5, 5, 6)), jnp.float32) for _ in range(3)]
    a, b = standardizing_affine(latents, "pyramid_flux")
    seen = np.asarray(normalize_latents(jnp.concatenate(latents) * a + b, "pyramid_flux"), np.float64)
    image, video = seen[:, :1].reshape(-1, 6), seen[:, 1:].reshape(-1, 6)
    pooled_variance = (image.var(axis=0).mean() + video.var(axis=0).mean()) / 2
    np.testing.assert_allclose(pooled_variance, 1.0, rtol=1e-4)
    np.testing.assert_allclose((image.mean(axis=0) + video.mean(axis=0)) / 2, 0.0, atol=1e-4)  # per channel


def test_standardize_vae_folder_rewrites_the_folder_with_standardized_latents(tmp_path):
    vae = CausalVideoVAE(VAEConfig(**TINY), rngs=nnx.Rngs(0))
    folder = str(tmp_path / "vae")
    config = {"_class_name": "CausalVideoVAE", **TINY}
    weights.write_converted(folder, config, [(p, np.asarray(v.get_value()))
                                             for p, v in nnx.to_flat_state(nnx.state(vae))])
    written = read_json(os.path.join(folder, weights.CONFIG_FILE))
    videos = np.random.default_rng(0).integers(0, 256, (3, 9, 16, 16, 3), dtype=np.uint8)
    a, b = standardize_vae_folder(folder, videos, "pyramid_flux", batch=2)
    assert read_json(os.path.join(folder, weights.CONFIG_FILE)) == written
    folded = load_vae(folder)
    seen = np.asarray(normalize_latents(folded.encode(jnp.asarray(to_unit_range(videos))).mode(), "pyramid_flux"))
    pooled_variance = (seen[:, :1].reshape(-1, 4).var(axis=0).mean() + seen[:, 1:].reshape(-1, 4).var(axis=0).mean())
    np.testing.assert_allclose(pooled_variance / 2, 1.0, rtol=1e-4)
    original = vae.encode(jnp.asarray(to_unit_range(videos))).mode()
    np.testing.assert_allclose(folded.decode(original * a + b), vae.decode(original), rtol=1e-5, atol=1e-5)
