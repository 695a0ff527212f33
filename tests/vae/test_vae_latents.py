"""Per-frame latent normalisation for the DiTs, checked on the reference pipeline's recorded training step."""

import jax
import numpy as np
import pytest

from conftest import FIXTURES, ncthw_to_cl
from pyramid_jax.dit.families import FAMILIES, denormalize_latents, normalize_latents
from vae_testing import assert_close, tiny_vae, unoptimized_compiles  # noqa: F401 (autouse fixture)


def test_encode_sample_normalize_matches_the_pipeline():
    """miniflux_tiny's VAE is fixtures/vae/model: video -> posterior sample (recorded noise) -> flux normalisation."""
    with np.load(FIXTURES / "training" / "training.npz") as data:
        video = ncthw_to_cl(data["call/video_uint8"]).astype(np.float32) / 127.5 - 1
        noise = ncthw_to_cl(data["call/rng/001_vae_posterior_noise"])
        want = ncthw_to_cl(data["call/vae_normalized_latents"])
    z = tiny_vae().encode(video).sample(noise=noise)
    assert_close(normalize_latents(z, "pyramid_flux"), want)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_denormalize_inverts_normalize(family):
    z = jax.random.normal(jax.random.key(0), (2, 3, 2, 2, 4))
    np.testing.assert_allclose(denormalize_latents(normalize_latents(z, family), family), z, atol=1e-6)


def test_image_constants_differ_between_families_video_constants_do_not():
    z = jax.random.normal(jax.random.key(1), (1, 3, 2, 2, 4))
    flux, mmdit = normalize_latents(z, "pyramid_flux"), normalize_latents(z, "pyramid_mmdit")
    assert not np.allclose(flux[:, 0], mmdit[:, 0])
    np.testing.assert_array_equal(flux[:, 1:], mmdit[:, 1:])


def test_unknown_family():
    with pytest.raises(ValueError, match="pyramid_flux"):
        normalize_latents(np.zeros((1, 1, 2, 2, 4), np.float32), "flux")
