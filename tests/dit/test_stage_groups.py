"""Stages with the same token layout run through the DiT's blocks as one batch, with each stage's own numbers."""

import jax
import jax.numpy as jnp
import numpy as np

import pyramid_jax
from pyramid_jax.dit.inputs import StageGroups
from pyramid_jax.dit.tokens import ImageTokens, StageLayout

from conftest import FIXTURES

SNAPSHOT_DIT = FIXTURES / "snapshots" / "miniflux_tiny" / "diffusion_transformer_384p"


def clips(rng, batch, *shapes):
    return [jnp.asarray(rng.standard_normal((batch, *s, 4), np.float32)) for s in shapes]


def test_alike_stages_group_and_equal_separate_calls():
    rng, batch = np.random.default_rng(0), 2
    # the training columns of sample_ratios (1, 2, 1) after 2 frames: stage 1's two columns are alike
    sample = [clips(rng, batch, (2, 2, 2), (1, 2, 2)), clips(rng, batch, (1, 2, 2), (1, 4, 4)),
              clips(rng, batch, (1, 2, 2), (1, 4, 4)), clips(rng, batch, (1, 2, 2), (1, 8, 8))]
    layouts = [StageLayout.from_clips(s, batch, 4, i) for i, s in enumerate(sample)]
    assert StageGroups.of(layouts, None).members == ((0,), (1, 2), (3,))
    tokens = [ImageTokens.unpadded(layout) for layout in layouts]
    assert StageGroups.of(layouts, tokens).members == ((0,), (1,), (2,), (3,))  # other arrays: never grouped
    assert StageGroups.of(layouts, [tokens[0], tokens[1], tokens[1], tokens[3]]).members == ((0,), (1, 2), (3,))

    num = len(sample)
    text = jnp.asarray(rng.standard_normal((batch * num, 8, 32), np.float32))
    mask = jnp.asarray(np.tile([1] * 6 + [0] * 2, (batch * num, 1)))  # padded text
    pooled = jnp.asarray(rng.standard_normal((batch * num, 24), np.float32))
    timesteps = jnp.asarray(rng.uniform(1, 1000, batch * num).astype(np.float32))
    dit = jax.jit(pyramid_jax.load_dit(str(SNAPSHOT_DIT)).__call__)
    together = dit(sample, text, mask, pooled, timesteps)
    for s in range(num):
        rows = np.arange(batch) * num + s
        alone = dit([sample[s]], text[rows], mask[rows], pooled[rows], timesteps[rows])[0]
        np.testing.assert_allclose(np.asarray(together[s]), np.asarray(alone), rtol=1e-6, atol=1e-6)
