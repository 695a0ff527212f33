"""Pyramid operations, block noise and the temporal-pyramid history layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pyramid_jax.sampling.history import HistoryClip, history_clips
from pyramid_jax.sampling.noise import KeyNoise, RecordedNoise
from pyramid_jax.sampling.pyramid import color_block_noise, lowest_stage_noise, upsample_nearest_2x

from conftest import FIXTURES, ncthw_to_cl

GAMMA = 1 / 3


def test_recorded_initial_noise_gives_each_units_input():
    """The 2x2 means reproduce torch's half-size bilinear interpolation bit for bit (history: test_sampler)."""
    npz = np.load(FIXTURES / "sampler" / "t2v.npz")
    low = lowest_stage_noise(ncthw_to_cl(npz["rng/000_init_latents"]), 3)
    for unit in range(3):
        np.testing.assert_array_equal(low[:, unit:unit + 1], ncthw_to_cl(npz[f"units/u{unit}/input_latents"]))
    jitted = jax.jit(lowest_stage_noise, static_argnums=1)(ncthw_to_cl(npz["rng/000_init_latents"]), 3)
    np.testing.assert_array_equal(np.asarray(jitted), low)


def test_upsample_nearest_copies_2x2_blocks():
    x = jnp.arange(6.0).reshape(1, 1, 2, 3, 1)
    y = np.asarray(upsample_nearest_2x(x))[0, 0, :, :, 0]
    np.testing.assert_array_equal(y, np.kron(np.arange(6.0).reshape(2, 3), np.ones((2, 2))))


def test_block_noise_has_the_block_covariance():
    z = np.random.default_rng(0).standard_normal((64, 1, 32, 32, 16), np.float32)
    blocks = np.asarray(color_block_noise(z, GAMMA)).reshape(64, 16, 2, 16, 2, 16).transpose(0, 1, 3, 5, 2, 4)
    blocks = blocks.reshape(-1, 4)
    cov = blocks.T @ blocks / len(blocks)
    np.testing.assert_allclose(cov, (1 + GAMMA) * np.eye(4) - GAMMA * np.ones((4, 4)), atol=0.01)
    assert np.abs(blocks.sum(-1)).max() < 1e-5  # rank 3 at gamma = 1/3: block sums vanish


def test_stage_jump_keeps_unit_variance_noise():
    """The stage-0 end point's noise (1 - o) n, upsampled and renoised, is i.i.d. with the corrected start sigma."""
    from pyramid_jax.sampling.scheduler import PyramidFlowScheduler

    sched = PyramidFlowScheduler()
    alpha, beta = sched.renoise_coefficients(1)
    o = 1 - sched.ori_start_sigmas[1]
    rng = np.random.default_rng(1)
    n = (1 - o) * rng.standard_normal((64, 1, 16, 16, 16), np.float32)
    x = alpha * np.asarray(upsample_nearest_2x(n)) + beta * color_block_noise(
        rng.standard_normal((64, 1, 32, 32, 16), np.float32), GAMMA)
    cells = x.reshape(64, 16, 2, 16, 2, 16).transpose(0, 1, 3, 5, 2, 4).reshape(-1, 4)
    np.testing.assert_allclose(cells.T @ cells / len(cells), sched.start_sigmas[1] ** 2 * np.eye(4), atol=0.01)


def test_key_noise_is_deterministic_per_unit():
    noise = KeyNoise(jax.random.key(3), 2, 16, 24, 4, 3, GAMMA, jnp.bfloat16)
    a, b = noise(1), noise(1)
    assert [x.shape for x in (a.latent, *a.block)] == [(2, 1, 4, 6, 4), (2, 1, 8, 12, 4), (2, 1, 16, 24, 4)]
    assert {x.dtype for x in jax.tree.leaves(a)} == {jnp.dtype(jnp.bfloat16)}
    blocks = np.asarray(a.block[1], np.float32).reshape(2, 8, 2, 12, 2, 4).sum(axis=(2, 4))
    assert np.abs(blocks).max() < 0.05  # block sums vanish (up to bf16 rounding)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.latent, noise(2).latent)


def test_recorded_noise_runs_out_clearly():
    noise = RecordedNoise(np.zeros((1, 2, 16, 24, 4), np.float32), [np.zeros((1, 1, 8, 12, 4))] * 2, 3)
    noise(0)
    with pytest.raises(IndexError, match="generated unit 1"):
        noise(1)


def test_history_layout_follows_the_temporal_pyramid():
    """pipeline_spec.md §4c and the dit_spec.md §7 example (unit 5)."""
    assert history_clips(0, 2) == ()
    assert history_clips(1, 2) == (HistoryClip(2, 0, 1),)
    assert history_clips(2, 2) == (HistoryClip(1, 0, 1), HistoryClip(2, 1, 2))
    assert history_clips(5, 2) == (HistoryClip(0, 0, 3), HistoryClip(1, 3, 4), HistoryClip(2, 4, 5))
    assert history_clips(5, 1) == (HistoryClip(0, 0, 4), HistoryClip(1, 4, 5))
    assert history_clips(5, 0) == (HistoryClip(0, 0, 4), HistoryClip(0, 4, 5))
    assert history_clips(1, 0) == (HistoryClip(0, 0, 1),)
