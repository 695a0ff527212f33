"""The jitted train step on the tiny miniFLUX DiT: it learns, guards bad batches, and shards like one device."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pyramid_jax
from pyramid_jax.dit_training.accumulation import micro_batch_groups, split_micro_batches
from pyramid_jax.dit_training.objective import KeyRandomness, PyramidObjective
from pyramid_jax.dit_training.text_dropout import TextConditioning
from pyramid_jax.dit_training.train_step import Batch, StepConfig, make_train_step
from pyramid_jax.training.optimizer import OptimizerConfig, gradient_transform, learning_rate
from pyramid_jax.training.train_state import init_train_state, split_for_training, train_state_shardings
from pyramid_jax.training.update import place_batch

from conftest import FIXTURES

SNAPSHOT_DIT = FIXTURES / "snapshots" / "miniflux_tiny" / "diffusion_transformer_384p"
UNITS = (2, 2)  # AR mode: every column has one history clip
# Two stages (two columns) rather than three: XLA's CPU compile time grows with the column count.
CONFIG = StepConfig(objective=PyramidObjective(sample_ratios=(1, 1), stage_range=(0, 0.5, 1)),
                    optimizer=OptimizerConfig(learning_rate=1e-3, warmup_steps=5), ema_decay=0.5, ema_every=4)


def synthetic_batch(seed=0, scale=1.0, frames=2, units=UNITS, size=8):
    """8 samples of `frames` latent frames at `size`x`size`, with 8 text tokens (the last two padding)."""
    rng = np.random.default_rng(seed)
    latents = rng.standard_normal((8, frames, size, size, 4), np.float32) * 0.5
    latents += np.linspace(-1, 1, 4, dtype=np.float32)
    mask = np.ones((8, 8), np.int32)
    mask[:, 6:] = 0
    text = TextConditioning(rng.standard_normal((8, 8, 32), np.float32), mask, rng.standard_normal((8, 24), np.float32))
    return Batch(jnp.asarray(latents * scale), jax.tree.map(jnp.asarray, text), units)


def compile_step(step, state, batch):
    """The step compiled for these argument types at XLA -O0: a third less CPU compile time, same numbers."""
    return step.lower(state, batch, jax.random.key(0)).compile({"xla_backend_optimization_level": 0})


@pytest.fixture(scope="module")
def model():
    return pyramid_jax.load_dit(str(SNAPSHOT_DIT))


def fresh_state(model, config=CONFIG, compute_dtype=None):
    _, params, buffers = split_for_training(model, compute_dtype)
    return init_train_state(jax.tree.map(jnp.copy, params), buffers, gradient_transform(config.optimizer))


@pytest.fixture(scope="module")
def fp32_step(model):
    graphdef, _, _ = split_for_training(model)
    return compile_step(make_train_step(graphdef, CONFIG), fresh_state(model), synthetic_batch())


def copy(state):
    return jax.tree.map(jnp.copy, state)  # the step donates its input state


def test_learning_rate_schedule_is_warmup_then_constant():
    config = OptimizerConfig(learning_rate=5e-5, warmup_steps=1000)
    want = np.linspace(1e-6, 5e-5, 1000)
    got = [float(learning_rate(config, s)) for s in (0, 1, 500, 999, 1000, 40_000)]
    np.testing.assert_allclose(got, [want[0], want[1], want[500], want[999], 5e-5, 5e-5], rtol=1e-5)


def test_loss_decreases_and_bad_batches_are_skipped(model, fp32_step):
    step, batch = fp32_step, synthetic_batch()
    state = fresh_state(model)

    def loss_at(state):  # the loss of the step's input weights, with fixed draws
        return float(step(copy(state), batch, jax.random.key(1000))[1]["loss"])

    before = loss_at(state)
    for i in range(30):
        state, metrics = step(state, batch, jax.random.key(i))
        assert not bool(metrics["skipped"])
    after = loss_at(state)
    assert after < 0.7 * before, (before, after)
    assert int(state.step) == 30 and int(state.num_skipped) == 0

    snapshot = jax.tree.map(np.asarray, (state.params, state.opt_state))
    bad = {"nan": dataclasses.replace(batch, latents=batch.latents.at[0, 0, 0, 0, 0].set(jnp.nan)),
           "exploding": synthetic_batch(scale=30.0)}
    for i, (name, bad_batch) in enumerate(bad.items()):
        state, metrics = step(state, bad_batch, jax.random.key(100 + i))
        loss = float(metrics["loss"])
        assert bool(metrics["skipped"]) and (not np.isfinite(loss) or loss >= 2.0), (name, loss)
    assert int(state.step) == 32 and int(state.num_skipped) == 2
    for got, want in zip(jax.tree.leaves((state.params, state.opt_state)), jax.tree.leaves(snapshot)):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_sharded_step_equals_single_device(model, fp32_step):
    """FSDP-sharded weights and Adam moments (rule table), batch over data: two steps match one device."""
    assert jax.device_count() == 8
    batch, keys = synthetic_batch(1), [jax.random.key(3), jax.random.key(4)]
    single = fresh_state(model)
    initial = jax.tree.map(np.asarray, single.params)
    for i, key in enumerate(keys):
        single, single_metrics = fp32_step(single, batch, key)
        if i == 0:  # EMA (decay 0.5, every 4 steps) updated at step 0: 0.5 initial + 0.5 new weights
            for e, p, p0 in zip(*(jax.tree.leaves(t) for t in (single.ema, single.params, initial))):
                np.testing.assert_allclose(np.asarray(e), 0.5 * p0 + 0.5 * np.asarray(p), rtol=1e-6, atol=1e-7)

    mesh = pyramid_jax.make_mesh(data=2, fsdp=4)
    shardings = train_state_shardings(jax.eval_shape(lambda: single), mesh)
    sharded, batch = jax.device_put(fresh_state(model), shardings), place_batch(batch, mesh)
    fsdp = jax.sharding.PartitionSpec("fsdp", None)
    assert sharded.params["transformer_blocks"][0]["attn"]["to_q"]["kernel"].get_value().sharding.spec == fsdp
    assert sharded.opt_state[1].mu["transformer_blocks"][0]["attn"]["to_q"]["kernel"].get_value().sharding.spec == fsdp
    graphdef, _, _ = split_for_training(model)
    sharded_step = compile_step(make_train_step(graphdef, CONFIG, state_shardings=shardings), sharded, batch)
    for key in keys:
        sharded, metrics = sharded_step(sharded, batch, key)
    assert sharded.params["transformer_blocks"][0]["attn"]["to_q"]["kernel"].get_value().sharding.spec == fsdp

    np.testing.assert_allclose(float(metrics["loss"]), float(single_metrics["loss"]), rtol=1e-5)
    for got, want in zip(jax.tree.leaves((sharded.params, sharded.opt_state, sharded.ema)),
                         jax.tree.leaves((single.params, single.opt_state, single.ema))):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_bf16_compute_with_fp32_master_weights_and_remat(model):
    """Image mode (one stage, T = 1) keeps the compile short; the bf16 loss stays close to the fp32 objective's."""
    config = dataclasses.replace(CONFIG, objective=PyramidObjective(sample_ratios=(1,), stage_range=(0, 1)),
                                 max_loss=float("inf"))
    batch, key = synthetic_batch(frames=1, units=None), jax.random.key(0)
    remat_model = pyramid_jax.load_dit(str(SNAPSHOT_DIT), remat_policy="dots_no_batch")
    graphdef, _, _ = split_for_training(remat_model, jnp.bfloat16)
    state = fresh_state(remat_model, config, jnp.bfloat16)
    state, metrics = compile_step(make_train_step(graphdef, config), state, batch)(state, batch, key)
    assert {x.dtype for x in jax.tree.leaves((state.params, state.opt_state[1].mu))} == {jnp.dtype(jnp.float32)}
    assert not bool(metrics["skipped"]) and int(state.step) == 1

    fp32_loss = jax.jit(lambda: config.objective.loss(model, batch.latents, batch.text, KeyRandomness(key)))()
    assert float(metrics["loss"]) != float(fp32_loss)
    np.testing.assert_allclose(float(metrics["loss"]), float(fp32_loss), rtol=2e-2)


def test_gradient_accumulation_equals_one_step_on_the_whole_batch(model, fp32_step):
    """grad_accum=2 on the 8-sample AR batch (2 micro-batches of 4): the same loss, gradient norm and gradients
    (to float rounding, ~1e-7 relative) as the step on all 8 samples at once; the micro-batches draw the whole
    batch's noise and timesteps for their samples."""
    config = dataclasses.replace(CONFIG, grad_accum=2)
    batch, key = synthetic_batch(2), jax.random.key(5)
    graphdef, _, _ = split_for_training(model)
    accumulated = compile_step(make_train_step(graphdef, config), fresh_state(model), batch)
    whole, whole_metrics = fp32_step(fresh_state(model), batch, key)
    split, split_metrics = accumulated(fresh_state(model), batch, key)
    assert float(whole_metrics["grad_norm"]) > 1e-2
    for name in ("loss", "grad_norm"):
        np.testing.assert_allclose(float(split_metrics[name]), float(whole_metrics[name]), rtol=1e-5)
    # Adam's first moment after one step is 0.1 x the clipped gradient
    for got, want in zip(jax.tree.leaves(split.opt_state[1].mu), jax.tree.leaves(whole.opt_state[1].mu)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-8)


def test_micro_batches_keep_columns_and_draw_what_the_whole_batch_draws():
    """8 samples, S = 2 columns, 2 micro-batches: groups (0, 2) and (1, 3) of 2 samples each."""
    micro = np.asarray(split_micro_batches(jnp.arange(8), 2, 2))
    groups = micro_batch_groups(8, 2, 2)
    assert micro.tolist() == [[0, 1, 4, 5], [2, 3, 6, 7]] and np.asarray(groups).tolist() == [[0, 2], [1, 3]]
    whole = KeyRandomness(jax.random.key(0))
    for rows, group in zip(micro, groups):
        part = KeyRandomness(jax.random.key(0), group)
        np.testing.assert_array_equal(part.noise((4, 3, 5)), whole.noise((8, 3, 5))[rows])
        np.testing.assert_array_equal(part.text_dropout_u(4), whole.text_dropout_u(8)[rows])
        np.testing.assert_array_equal(part.timestep_u(1, 2), whole.timestep_u(1, 4)[group])
        np.testing.assert_array_equal(part.corrupt_noise(1, 0, (2, 3)), whole.corrupt_noise(1, 0, (4, 3))[group])
    with pytest.raises(ValueError, match="multiple of grad_accum"):
        split_micro_batches(jnp.arange(6), 2, 2)
