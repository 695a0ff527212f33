"""Learning-rate schedules: the DiT's warmup-constant and the VAE recipe's warmup + cosine (vae_spec.md §5.4)."""

import jax.numpy as jnp
import numpy as np
import pytest

from pyramid_jax.training.optimizer import OptimizerConfig, learning_rate
from pyramid_jax.vae_training.config import VAE_OPTIMIZER, VAEDataConfig


def test_vae_recipe_schedule_is_linspace_warmup_then_cosine_to_the_minimum():
    for step in (0, 1, 1000, 1999, 2000, 2001, 50_000, 150_000, 199_999, 250_000):
        i = step - 2000
        want = (np.linspace(0, 1e-4, 2000)[step] if step < 2000 else
                1e-5 + 0.5 * (1e-4 - 1e-5) * (1 + np.cos(np.pi * min(i, 198_000) / 198_000)))
        np.testing.assert_allclose(float(learning_rate(VAE_OPTIMIZER, jnp.int32(step))), want, rtol=1e-5, atol=1e-10)


def test_dit_schedule_stays_constant_after_the_warmup():
    config = OptimizerConfig()
    np.testing.assert_allclose(float(learning_rate(config, jnp.int32(5))), np.linspace(1e-6, 5e-5, 1000)[5], rtol=1e-5)
    assert float(learning_rate(config, jnp.int32(10_000))) == pytest.approx(5e-5)


def test_vae_clips_must_have_1_plus_8k_frames():
    with pytest.raises(ValueError, match="1 \\+ 8k"):
        VAEDataConfig(frames=16)
