"""Block-stack options: per-block remat and scanned layers give the same numbers and really change the program."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import pyramid_jax
from pyramid_jax.config import ConfigError

from conftest import FIXTURES
from flux_cases import load_case

CASES = np.load(FIXTURES / "dit_flux" / "cases.npz")


def _loss_and_grad(model, args):
    graphdef, state = nnx.split(model)

    def loss(state):
        return sum(jnp.mean(jnp.square(o)) for o in nnx.merge(graphdef, state)(*args))

    return jax.value_and_grad(loss)(state), jax.make_jaxpr(jax.grad(loss))(state)


@pytest.mark.parametrize("family", ["dit_flux", "dit_mmdit"])
def test_block_remat_keeps_gradients_and_adds_checkpoints(family):
    path = str(FIXTURES / family / "model")
    args, _ = load_case(np.load(FIXTURES / family / "cases.npz"), "case1")
    (loss, grads), plain_jaxpr = _loss_and_grad(pyramid_jax.load_dit(path), args)
    (loss_r, grads_r), remat_jaxpr = _loss_and_grad(pyramid_jax.load_dit(path, remat_policy="full"), args)
    np.testing.assert_allclose(loss_r, loss, rtol=1e-6)
    for g, g_r in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_r)):
        np.testing.assert_allclose(g_r, g, rtol=1e-5, atol=1e-6)
    assert "remat" not in str(plain_jaxpr) and "remat" in str(remat_jaxpr)


def test_unknown_policy_is_an_error():
    with pytest.raises(ConfigError, match="remat_policy"):
        pyramid_jax.load_dit(str(FIXTURES / "dit_flux" / "model"), remat_policy="some")


@pytest.mark.parametrize("family", ["dit_flux", "dit_mmdit"])
def test_scanned_layers_match_unrolled(family):
    path = str(FIXTURES / family / "model")
    args, _ = load_case(np.load(FIXTURES / family / "cases.npz"), "case2")
    (loss, grads), _ = _loss_and_grad(pyramid_jax.load_dit(path), args)
    (loss_s, grads_s), jaxpr = _loss_and_grad(pyramid_jax.load_dit(path, scan_layers=True, remat_policy="dots"), args)
    assert "scan" in str(jaxpr)
    np.testing.assert_allclose(loss_s, loss, rtol=1e-6)
    for g, g_s in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_s)):
        np.testing.assert_allclose(g_s, g, rtol=1e-5, atol=1e-6)
