"""The sampler traced on 8 fake devices, tokens split over `sequence` and rows over data x fsdp, equals one device.

One prompt gives 2 CFG rows, which data x fsdp = 4 does not divide (padded with a repeated sample), and the lowest
stage has 2 image tokens, which sequence = 8 does not divide (padded with masked tokens).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pyramid_jax
from pyramid_jax.parallel.mesh import make_mesh
from pyramid_jax.sampling.noise import KeyNoise
from pyramid_jax.sampling.sampler import PyramidSampler, TextConditioning

from conftest import FIXTURES

DIT = str(FIXTURES / "snapshots" / "miniflux_tiny" / "diffusion_transformer_384p")


def video(mesh):
    dit = pyramid_jax.load_dit(DIT, mesh=mesh)
    cfg = dit.config
    keys = jax.random.split(jax.random.key(1), 3)
    text = TextConditioning(jax.random.normal(keys[0], (2, 16, cfg.joint_attention_dim)),
                            jnp.ones((2, 16), jnp.int32).at[:, 5:].set(0).at[1, 9].set(1),
                            jax.random.normal(keys[1], (2, cfg.pooled_projection_dim)))
    sampler = PyramidSampler(dit, mesh=mesh)
    noise = KeyNoise(keys[2], 1, 8, 16, cfg.latent_channels, 3, sampler.scheduler.gamma)
    return np.asarray(sampler.video(text, noise, 3, [1, 1, 1], [1, 1, 1], 7.0, 5.0))


@pytest.mark.parametrize("axes", [dict(data=1, sequence=8), dict(data=2, fsdp=2, sequence=2)])
def test_sampler_on_a_sequence_mesh_equals_one_device(axes):
    assert jax.device_count() == 8
    single = video(None)
    sharded = video(make_mesh(**axes))
    assert np.abs(sharded - single).max() <= 1e-5 * np.abs(single).max()
