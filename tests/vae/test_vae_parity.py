"""Parity with every recorded call of the reference CausalVideoVAE (fixtures/vae, fp32, random weights)."""

import numpy as np
import pytest

from vae_testing import assert_close, case, tiny_vae, unoptimized_compiles  # noqa: F401 (autouse fixture)

ENCODE_CASES = {
    "encode_image": ("encode_image/x", {}),
    "encode_video": ("encode_video/x", {}),
    "encode_video_chunked": ("encode_video/x", dict(temporal_chunk=True, window_size=8)),
    "encode_image_tiled": ("encode_image/x", dict(tile_sample_min_size=32)),
}

DECODE_CASES = {
    "decode_plain": ("decode/z", {}),
    "decode_not_init_image": ("decode/z", dict(is_init_image=False)),
    "decode_chunk_w1": ("decode/z", dict(temporal_chunk=True, window_size=1)),
    "decode_chunk_w2": ("decode/z", dict(temporal_chunk=True, window_size=2)),
    "decode_tiled": ("decode/z", dict(tile_sample_min_size=32)),
    "decode_tiled_chunk_w1": ("decode/z", dict(temporal_chunk=True, window_size=1, tile_sample_min_size=32)),
    "decode_tiled_chunk_w2": ("decode/z", dict(temporal_chunk=True, window_size=2, tile_sample_min_size=32)),
    "decode_image": ("decode_image/z", {}),
}


@pytest.mark.parametrize("name", ENCODE_CASES)
def test_encode(name):
    x, options = ENCODE_CASES[name]
    posterior = tiny_vae().encode(case(x), **options)
    assert_close(posterior.mean, case(f"{name}/mean"))
    assert_close(posterior.logvar, case(f"{name}/logvar"))
    assert_close(posterior.std, case(f"{name}/std"))
    assert_close(posterior.mode(), case(f"{name}/mean"))


def test_posterior_sample_with_recorded_noise():
    posterior = tiny_vae().encode(case("encode_video/x"))
    assert_close(posterior.sample(noise=case("encode_video/posterior_noise")), case("encode_video/posterior_sample"))


@pytest.mark.parametrize("name", DECODE_CASES)
def test_decode(name):
    z, options = DECODE_CASES[name]
    assert_close(tiny_vae().decode(case(z), **options), case(f"{name}/video"))


def test_tiling_changes_the_result():
    """Guards the tiled cases against silently running untiled (the reference's tiles are approximations)."""
    assert not np.allclose(case("decode_tiled/video"), case("decode_plain/video"), atol=1e-3)
    assert not np.allclose(case("encode_image_tiled/mean"), case("encode_image/mean"), atol=1e-3)
