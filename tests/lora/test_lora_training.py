"""LoRA training on the tiny miniFLUX DiT: fresh adapters leave the model exactly as it is, a step changes only
the adapters (no optimizer state for the frozen DiT), and a killed run resumes bit-identically from checkpoints
that hold only the adapters."""

import dataclasses
import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from jax.sharding import PartitionSpec

import pyramid_jax
from pyramid_jax.dit_training.lora import adapted_model, split_for_lora
from pyramid_jax.dit_training.objective import PyramidObjective
from pyramid_jax.dit_training.plan import pyramid_plan
from pyramid_jax.dit_training.train_step import Batch, StepConfig, make_train_step
from pyramid_jax.lora import LoraConfig, apply_adapters
from pyramid_jax.lora.adapters import A, B, target_kernels
from pyramid_jax.sampling import TextConditioning
from pyramid_jax.training.checkpoint import TrainCheckpointer
from pyramid_jax.training.loop import LoopConfig, restore_or_keep, train
from pyramid_jax.training.optimizer import OptimizerConfig, gradient_transform
from pyramid_jax.training.train_state import init_train_state, train_state_shardings
from pyramid_jax.training.update import place_batch

from conftest import FIXTURES

SNAPSHOT_DIT = FIXTURES / "snapshots" / "miniflux_tiny" / "diffusion_transformer_384p"
LORA = LoraConfig(rank=4, alpha=8.0, targets="attn")
# image mode with one stage: the smallest program that still runs the whole step
CONFIG = StepConfig(objective=PyramidObjective(sample_ratios=(1,), stage_range=(0, 1)),
                    optimizer=OptimizerConfig(learning_rate=1e-2, warmup_steps=1), ema_decay=0.5, ema_every=2,
                    max_loss=float("inf"))
LOOP = LoopConfig(num_steps=4, seed=3, temporal_pyramid=False, log_every=2, save_every=2)


def batch(step):
    rng = np.random.default_rng(step)
    text = TextConditioning(rng.standard_normal((8, 8, 32), np.float32), np.ones((8, 8), np.int32),
                            rng.standard_normal((8, 24), np.float32))
    return Batch(jnp.asarray(rng.standard_normal((8, 1, 8, 8, 4), np.float32)), jax.tree.map(jnp.asarray, text))


def batches(start, state=None):
    return (batch(step) for step in itertools.count(start))


@pytest.fixture(scope="module")
def setup():
    model = pyramid_jax.load_dit(str(SNAPSHOT_DIT))
    graphdef, adapters, frozen = split_for_lora(model, LORA, seed=0)
    step = make_train_step(graphdef, CONFIG, model=adapted_model(graphdef, LORA))
    state = fresh_state(adapters, frozen)
    return model, step.lower(state, batch(0), jax.random.key(0)).compile({"xla_backend_optimization_level": 0})


def fresh_state(adapters, frozen):
    return init_train_state(*jax.tree.map(jnp.copy, (adapters, frozen)), gradient_transform(CONFIG.optimizer))


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_targets_and_zero_b_is_the_base_model_exactly():
    params = nnx.state(pyramid_jax.load_dit(str(SNAPSHOT_DIT)), nnx.Param)
    names = {t: {"/".join(map(str, p)) for p, _ in target_kernels(params, t)}
             for t in ("attn", "mlp", "all", "text", "all,text")}
    assert "single_transformer_blocks/1/attn/to_q/kernel" in names["attn"]
    assert "transformer_blocks/0/attn/to_add_out/kernel" in names["attn"]
    assert {"transformer_blocks/0/ff_context/proj_in/kernel",
            "single_transformer_blocks/0/proj_out/kernel"} <= names["mlp"]
    assert names["all"] == names["attn"] | names["mlp"] and not names["attn"] & names["mlp"]
    assert not any("norm" in n or "embed" in n for n in names["all"])
    assert names["text"] == {"context_embedder/kernel", "time_text_embed/text_embedder/linear_1/kernel",
                             "time_text_embed/text_embedder/linear_2/kernel"}
    assert names["all,text"] == names["all"] | names["text"]

    _, adapters, _ = split_for_lora(pyramid_jax.load_dit(str(SNAPSHOT_DIT)), LORA, seed=0)
    for got, want in zip(leaves(apply_adapters(params, [(adapters, 2.0)])), leaves(params)):
        np.testing.assert_array_equal(got, want)


def test_a_step_changes_only_the_adapters(setup):
    model, step = setup
    _, adapters, frozen = split_for_lora(model, LORA, seed=0)
    base = leaves(frozen)
    state = fresh_state(adapters, frozen)
    # the optimizer's moments and the EMA cover the adapters and nothing else
    assert jax.tree.structure(state.opt_state[1].mu) == jax.tree.structure(adapters)
    assert sum(x.size for x in jax.tree.leaves(state.opt_state)) < 3 * sum(x.size for x in jax.tree.leaves(adapters))
    state, metrics = step(state, batch(0), jax.random.key(0))
    state, metrics = step(state, batch(1), jax.random.key(1))
    assert not bool(metrics["skipped"]) and float(metrics["grad_norm"]) > 0
    for got, want in zip(leaves(state.buffers), base):
        np.testing.assert_array_equal(got, want)
    changed = [not np.array_equal(a, b) for a, b in zip(leaves(state.params), leaves(adapters))]
    assert all(changed)  # every A and every B moved


def test_on_a_mesh_with_remat_and_accumulation_the_step_is_the_same(setup):
    """Adapters sharded like the kernels they adapt, per-block remat and two micro-batches: the same loss and
    adapter gradients as the plain single-device step."""
    model, step = setup
    _, adapters, frozen = split_for_lora(model, LORA, seed=0)
    single, single_metrics = step(fresh_state(adapters, frozen), batch(0), jax.random.key(0))

    mesh = pyramid_jax.make_mesh(data=2, fsdp=2, tensor=2)
    remat = pyramid_jax.load_dit(str(SNAPSHOT_DIT), remat_policy="full")
    graphdef, adapters, frozen = split_for_lora(remat, LORA, seed=0)
    state = fresh_state(adapters, frozen)
    shardings = train_state_shardings(state, mesh)
    state = jax.device_put(state, shardings)
    to_q = state.params["transformer_blocks"][0]["attn"]["to_q"]
    assert to_q[A].get_value().sharding.spec == PartitionSpec("fsdp", None)
    assert to_q[B].get_value().sharding.spec == PartitionSpec(None, "tensor")
    config = dataclasses.replace(CONFIG, grad_accum=2)
    sharded_step = make_train_step(graphdef, config, state_shardings=shardings, model=adapted_model(graphdef, LORA))
    sharded, metrics = sharded_step(state, place_batch(batch(0), mesh), jax.random.key(0))
    np.testing.assert_allclose(float(metrics["loss"]), float(single_metrics["loss"]), rtol=1e-5)
    for got, want in zip(leaves(sharded.opt_state[1].mu), leaves(single.opt_state[1].mu)):  # 0.1 x the gradient
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-8)


def test_killed_run_resumes_identically_from_adapter_checkpoints(setup, tmp_path):
    model, step = setup
    fresh = lambda: fresh_state(*split_for_lora(model, LORA, seed=0)[1:])  # noqa: E731
    plan = pyramid_plan(CONFIG.objective, LOOP, model.config)
    straight = train(fresh(), step, batches, plan, LOOP, log=lambda _: None)

    def dies_at_3(state, b, key):
        if int(state.step) == 3:
            raise KeyboardInterrupt
        return step(state, b, key)

    directory = str(tmp_path / "run")
    checkpointer = TrainCheckpointer(directory, max_to_keep=2, save_buffers=False)
    with pytest.raises(KeyboardInterrupt):
        train(fresh(), dies_at_3, batches, plan, LOOP, checkpointer, log=lambda _: None)
    checkpointer.close()
    checkpointer = TrainCheckpointer(directory, max_to_keep=2, save_buffers=False)
    resumed, _ = restore_or_keep(fresh(), checkpointer, LOOP.seed)
    assert int(resumed.step) == 2
    resumed = train(resumed, step, batches, plan, LOOP, checkpointer, log=lambda _: None)
    checkpointer.close()
    for got, want in zip(leaves(resumed), leaves(straight)):
        np.testing.assert_array_equal(got, want)
    saved = ocp.StandardCheckpointer().metadata(os.path.join(directory, "4", "state")).item_metadata.tree
    assert saved["buffers"] is None  # the frozen DiT is left out; adapters, their moments and EMA are in
    assert len(jax.tree.leaves(saved)) == len(jax.tree.leaves(straight.replace(buffers=None)))
