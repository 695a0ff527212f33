"""Per-block rematerialisation: same gradients, and the backward really recomputes blocks."""

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
