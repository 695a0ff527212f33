"""Streaming (temporal chunks carrying the causal cache) equals whole-clip processing, with a fixed-size program."""

import jax
import numpy as np
import pytest

from pyramid_jax.parallel.compiled import PlacedModel
from pyramid_jax.vae.model import encode_program
from vae_testing import assert_close, case, tiny_vae, unoptimized_compiles  # noqa: F401 (autouse fixture)


def test_chunked_encode_with_a_short_last_chunk_equals_full():
    """T = 25, window 16: chunks of 17 and 8 frames; the last is zero-padded at its end to a full window."""
    x = np.random.default_rng(0).uniform(-1, 1, (1, 25, 16, 24, 3)).astype(np.float32)
    full = tiny_vae().encode(x)
    chunked = tiny_vae().encode(x, temporal_chunk=True, window_size=16)
    assert chunked.mean.shape == (1, 4, 2, 3, 4)
    assert_close(chunked.mean, full.mean)
    assert_close(chunked.logvar, full.logvar)


@pytest.mark.parametrize("window", [1, 2])
def test_chunked_decode_equals_full(window):
    """4 latents: windows 1 (chunks 2, 1, 1) and 2 (chunks 3 and a zero-padded 1)."""
    z = case("decode/z")
    assert_close(tiny_vae().decode(z, temporal_chunk=True, window_size=window), tiny_vae().decode(z))


def test_encoder_is_causal_in_time():
    """Latent frame j sees only frames <= 8j: changing frames 9.. leaves latent frames 0 and 1 as they were."""
    x = case("encode_video/x")
    changed = x.copy()
    changed[:, 9:] = -changed[:, 9:]
    before, after = tiny_vae().encode(x).mean, tiny_vae().encode(changed).mean
    np.testing.assert_array_equal(np.asarray(after[:, :2]), np.asarray(before[:, :2]))
    assert not np.allclose(after[:, 2], before[:, 2])


def _lowered_ops(num_frames: int, window: int) -> str:
    x = jax.ShapeDtypeStruct((1, num_frames, 16, 16, 3), np.float32)
    return encode_program.lower(PlacedModel(tiny_vae()), x, temporal_chunk=True, window_size=window).as_text()


def test_streamed_program_does_not_grow_with_the_clip():
    """The later chunks run as one scanned step: 2 and 5 chunks lower to the same number of convolutions."""
    short, long = _lowered_ops(17, 8), _lowered_ops(41, 8)
    convs = short.count("stablehlo.convolution")
    assert convs == long.count("stablehlo.convolution") > 0
    assert "stablehlo.while" in short and "stablehlo.while" in long
