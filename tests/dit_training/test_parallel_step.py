"""Sequence- and tensor-parallel train steps on 8 fake devices equal the single-device step."""

import jax
import numpy as np
import pytest

import pyramid_jax
from pyramid_jax.dit_training.train_step import make_train_step
from pyramid_jax.training.train_state import split_for_training, train_state_shardings
from pyramid_jax.training.update import place_batch

from test_train_step import CONFIG, SNAPSHOT_DIT, compile_step, fresh_state, synthetic_batch

# 12x12 latents: the full-resolution column has 72 image and 80 joint tokens, split 4 ways over `sequence`; the
# half-resolution column's 18 image tokens, which 4 does not divide, get 2 masked lead tokens and split too.
BATCH = synthetic_batch(1, size=12)
KEY = jax.random.key(3)


@pytest.fixture(scope="module")
def model():
    return pyramid_jax.load_dit(str(SNAPSHOT_DIT))


@pytest.fixture(scope="module")
def single_step(model):
    graphdef, _, _ = split_for_training(model)
    state = fresh_state(model)
    return compile_step(make_train_step(graphdef, CONFIG), state, BATCH)(state, BATCH, KEY)


@pytest.mark.parametrize("axes", [dict(data=2, sequence=4), dict(fsdp=2, tensor=2, sequence=2),
                                  dict(data=2, fsdp=2, tensor=2)], ids=str)
def test_parallel_step_equals_single_device(model, single_step, axes):
    """With `sequence`, the blocks' hidden states are split over it: the compiled program holds them as
    `[rows, 80 / sequence, 64]` per device. With `tensor` next to a ("data", "fsdp") batch, the AdaLN modulation
    constraint avoids XLA's sample-swapping miscompile (without it the loss is ~1% off)."""
    mesh = pyramid_jax.make_mesh(**axes)
    single, single_metrics = single_step
    shardings = train_state_shardings(jax.eval_shape(lambda: single), mesh)
    state, batch = jax.device_put(fresh_state(model), shardings), place_batch(BATCH, mesh)
    graphdef, _, _ = split_for_training(model)
    step = compile_step(make_train_step(graphdef, CONFIG, state_shardings=shardings), state, batch)
    if "sequence" in axes:
        rows = 4 // (axes.get("data", 1) * axes.get("fsdp", 1))  # a column's 4 samples over the batch axes
        assert f"f32[{rows},{80 // axes['sequence']},64]" in step.as_text()
    state, metrics = step(state, batch, KEY)

    np.testing.assert_allclose(float(metrics["loss"]), float(single_metrics["loss"]), rtol=1e-6)
    for got, want in zip(jax.tree.leaves((state.params, state.opt_state)),
                         jax.tree.leaves((single.params, single.opt_state))):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
