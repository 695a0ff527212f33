"""Inputs the VAE cannot take fail early with a ValueError that says why."""

import numpy as np
import pytest

from pyramid_jax.vae.posterior import DiagonalGaussian
from vae_testing import tiny_vae

VIDEO = np.zeros((1, 9, 16, 24, 3), np.float32)
LATENTS = np.zeros((1, 2, 2, 3, 4), np.float32)


@pytest.mark.parametrize("video, message", [
    (np.zeros((1, 8, 16, 24, 3), np.float32), "1 \\+ 8k frames"),
    (np.zeros((1, 16, 16, 24, 3), np.float32), "1 \\+ 8k frames"),
    (np.zeros((1, 9, 20, 24, 3), np.float32), "multiples of 8"),
    (np.zeros((1, 9, 16, 12, 3), np.float32), "multiples of 8"),
    (np.zeros((1, 9, 16, 24, 4), np.float32), "channels last"),
    (np.zeros((1, 3, 9, 16, 24), np.float32), "channels last"),  # torch layout
    (np.zeros((9, 16, 24, 3), np.float32), "channels last"),
    (np.zeros((1, 9, 16, 24, 3), np.uint8), "floating point"),
])
def test_bad_video(video, message):
    with pytest.raises(ValueError, match=message):
        tiny_vae().encode(video)


@pytest.mark.parametrize("options, message", [
    (dict(temporal_chunk=True, window_size=4), "window_size"),
    (dict(temporal_chunk=True, window_size=0), "window_size"),
    (dict(tile_sample_min_size=30), "tile_sample_min_size"),
    (dict(tile_sample_min_size=24), "multiple of 32"),  # would step 18 px but keep 24 px per tile
])
def test_bad_encode_options(options, message):
    with pytest.raises(ValueError, match=message):
        tiny_vae().encode(VIDEO, **options)


@pytest.mark.parametrize("latents, options, message", [
    (np.zeros((1, 2, 2, 3, 16), np.float32), {}, "channels last"),
    (np.zeros((2, 2, 3, 4), np.float32), {}, "channels last"),
    (np.zeros((1, 0, 2, 3, 4), np.float32), {}, "channels last"),
    (LATENTS, dict(temporal_chunk=True, window_size=0), "window_size"),
    (LATENTS, dict(tile_sample_min_size=-8), "tile_sample_min_size"),
])
def test_bad_latents(latents, options, message):
    with pytest.raises(ValueError, match=message):
        tiny_vae().decode(latents, **options)


def test_posterior_sample_needs_exactly_one_noise_source():
    posterior = DiagonalGaussian.from_moments(np.zeros((1, 1, 2, 2, 8), np.float32))
    with pytest.raises(ValueError, match="exactly one"):
        posterior.sample()
    with pytest.raises(ValueError, match="noise shape"):
        posterior.sample(noise=np.zeros((1, 1, 2, 2, 8), np.float32))
