"""Bucketed AR training: histories padded to a few bucket capacities give the exact loss and gradients with a
bounded number of compiled programs per allocation cycle."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import pyramid_jax
from pyramid_jax.dit_training.objective import KeyRandomness, PyramidObjective
from pyramid_jax.dit_training.text_dropout import TextConditioning
from pyramid_jax.dit_training.train_step import Batch
from pyramid_jax.dit_training.units import PaddedUnits, stage_units, unit_capacities
from pyramid_jax.sampling.buckets import history_buckets
from pyramid_jax.sampling.history import PaddedHistory, history_clips

from conftest import FIXTURES

SNAPSHOT_DIT = FIXTURES / "snapshots" / "miniflux_tiny" / "diffusion_transformer_384p"
OBJECTIVE = PyramidObjective(sample_ratios=(1, 1, 1))  # every stage once: three columns, a shorter compile
MAX_UNITS = 4


def cycle(max_units, num_stages=3):
    return [stage_units(counter, max_units, num_stages) for counter in range(1, max_units + 1)]


def test_padded_history_keeps_each_real_frame_at_its_level():
    for capacity in range(6):
        for stage in range(3):
            plan = PaddedHistory(capacity, stage)
            for u in range(capacity + 1):
                exact = history_clips(u, stage)
                pad = capacity - u
                for p, clip in enumerate(plan.clips):
                    j, real = plan.source[u, p], plan.real[u, p]
                    if j < 0:
                        assert real == 0 and clip.stop <= pad
                        continue
                    assert exact[j].level == clip.level and real == exact[j].stop - exact[j].start
                    assert (clip.stop - real, clip.stop) == (exact[j].start + pad, exact[j].stop + pad)
                assert sorted(plan.source[u][plan.source[u] >= 0]) == list(range(len(exact)))


@pytest.mark.parametrize("max_units, programs", [(16, 4), (31, 5), (3, 2), (4, 2), (1, 1)])
def test_an_allocation_cycle_needs_one_program_per_bucket(max_units, programs):
    """Distinct step signatures (what jit compiles a program for) over a whole `stage_units` cycle."""
    assert len({unit_capacities(u, max_units) for u in cycle(max_units)}) == programs
    assert programs == len(history_buckets(max_units)) + 1
    signature = jax.jit(lambda batch: 0)  # the step's jit cache key is the batch's treedef and shapes
    latents = jnp.zeros((3, max_units, 2, 2, 4))
    text = TextConditioning(jnp.zeros((3, 2, 8)), jnp.ones((3, 2), jnp.int32), jnp.zeros((3, 4)))
    for units in cycle(max_units):
        batch = Batch(latents, text, units).bucketed(max_units)
        assert all(c >= n - 1 for c, n in zip(batch.padded_units.capacities, units))
        signature(batch)
    assert signature._cache_size() == programs


@pytest.fixture(scope="module")
def tiny():
    graphdef, state = nnx.split(pyramid_jax.load_dit(str(SNAPSHOT_DIT)))
    rng = np.random.default_rng(0)
    latents = jnp.asarray(rng.standard_normal((6, MAX_UNITS, 8, 8, 4), np.float32) * 0.5)
    mask = np.ones((6, 8), np.int32)
    mask[:, 5:] = 0  # padded text
    text = TextConditioning(*map(jnp.asarray, (rng.standard_normal((6, 8, 32), np.float32), mask,
                                               rng.standard_normal((6, 24), np.float32))))
    return graphdef, state, latents, text


def loss_and_grads(graphdef, state, latents, text, key, units):
    def loss(state):
        return OBJECTIVE.loss(nnx.merge(graphdef, state), latents, text, KeyRandomness(key), units)

    return jax.value_and_grad(loss)(state)


def test_bucketed_loss_and_gradients_equal_the_exact_ones(tiny):
    """A whole cycle of 4 units (1-unit stages at both ends) with padded text: one program per bucket, each
    allocation's loss and gradients those of its own exact program to 1e-5."""
    graphdef, state, latents, text = tiny
    key = jax.random.key(7)
    # two functions: jit's cache is per function; -O0 compiles a third faster on CPU, the same numbers
    fast = dict(compiler_options={"xla_backend_optimization_level": 0})
    exact = jax.jit(lambda *args: loss_and_grads(*args), static_argnums=(0, 5), **fast)
    bucketed = jax.jit(lambda *args: loss_and_grads(*args), static_argnums=0, **fast)
    allocations = cycle(MAX_UNITS)
    assert {1, MAX_UNITS} <= {n for units in allocations for n in units}
    for units in allocations:
        want_loss, want_grads = exact(graphdef, state, latents, text, key, units)
        got_loss, got_grads = bucketed(graphdef, state, latents, text, key, PaddedUnits.bucketed(units, MAX_UNITS))
        np.testing.assert_allclose(float(got_loss), float(want_loss), rtol=1e-5, err_msg=str(units))
        for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(got_grads), jax.tree.leaves(want_grads)):
            got, want = np.asarray(got), np.asarray(want)
            scale = float(np.abs(want).max())
            assert scale > 0, (units, path)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, err_msg=f"{units} {path}")
    assert bucketed._cache_size() == len(history_buckets(MAX_UNITS)) + 1 == 2
