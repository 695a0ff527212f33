"""Checkpoints: a killed run resumes bit-identically, data order included (the data iterator's state is saved
with the checkpoint); a checkpoint restores under another mesh; keep-N."""

import os
import pathlib
import sys

import jax
import numpy as np
import pytest

import pyramid_jax
from pyramid_jax.dit_training.batches import batch_source
from pyramid_jax.dit_training.objective import PyramidObjective
from pyramid_jax.dit_training.plan import pyramid_plan
from pyramid_jax.dit_training.train_step import StepConfig, make_train_step
from pyramid_jax.training.checkpoint import TrainCheckpointer
from pyramid_jax.training.data import DataConfig, DataSource
from pyramid_jax.training.loop import LoopConfig, restore_or_keep, train
from pyramid_jax.training.optimizer import OptimizerConfig
from pyramid_jax.training.train_state import split_for_training, train_state_shardings

from latent_dataset import write_dataset

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "dit_training"))
from test_train_step import SNAPSHOT_DIT, compile_step, fresh_state, synthetic_batch  # noqa: E402

# image mode with one stage: the smallest program that still runs the whole step
CONFIG = StepConfig(objective=PyramidObjective(sample_ratios=(1,), stage_range=(0, 1)),
                    optimizer=OptimizerConfig(learning_rate=1e-3, warmup_steps=3), ema_decay=0.5, ema_every=2,
                    max_loss=float("inf"))
LOOP = LoopConfig(num_steps=6, seed=3, temporal_pyramid=False, log_every=3, save_every=2)


class Killed(Exception):
    pass


def dies_at(step_fn, step):
    def run(state, batch, key):
        if int(state.step) == step:
            raise Killed
        return step_fn(state, batch, key)

    return run


def latent_batches(model, folder):
    """Pre-extracted latents from disk: 12 clips of 1 or 2 frames, cut to 1, one batch of 8 per epoch."""
    annotation = write_dataset(folder, [(2, 8, 8, 4)] * 6 + [(1, 8, 8, 4)] * 6)
    data = DataConfig(source=DataSource.LATENTS, annotation=annotation, batch_size=8, frames=1, read_threads=2)
    return batch_source(data, model.config, seed=LOOP.seed, mesh=None, family="pyramid_flux",
                        log=lambda _: None)


@pytest.fixture(scope="module")
def setup():
    model = pyramid_jax.load_dit(str(SNAPSHOT_DIT))
    graphdef, _, _ = split_for_training(model)
    state = fresh_state(model, CONFIG)
    step = compile_step(make_train_step(graphdef, CONFIG), state, synthetic_batch(frames=1, units=None))
    return model, step


def leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(state)]


def test_killed_run_resumes_identically_and_restores_under_another_mesh(setup, tmp_path):
    model, step = setup
    batches = latent_batches(model, tmp_path / "data")
    plan = pyramid_plan(CONFIG.objective, LOOP, model.config)
    logs = []
    straight = train(fresh_state(model, CONFIG), step, batches, plan, LOOP, log=logs.append)
    assert int(straight.step) == 6 and len(logs) == 2
    assert all(unit in logs[0] for unit in ("steps/s", "tokens/s", "TFLOP/s/device"))

    directory = str(tmp_path / "run")
    checkpointer = TrainCheckpointer(directory, max_to_keep=2)
    with pytest.raises(Killed):
        train(fresh_state(model, CONFIG), dies_at(step, 5), batches, plan, LOOP, checkpointer)
    checkpointer.close()  # the process dies; the saves of steps 2 and 4 had been handed over

    checkpointer = TrainCheckpointer(directory, max_to_keep=2)
    resumed, record = restore_or_keep(fresh_state(model, CONFIG), checkpointer, LOOP.seed)
    assert int(resumed.step) == 4 and record["data"]["position"] == 4
    np.testing.assert_array_equal(next(batches(0, record["data"])).latents, next(batches(4)).latents)
    resumed = train(resumed, step, batches, plan, LOOP, checkpointer, data_state=record["data"])
    for got, want in zip(leaves(resumed), leaves(straight)):
        np.testing.assert_array_equal(got, want)
    assert sorted(int(d) for d in os.listdir(directory) if d.isdigit()) == [4, 6]

    mesh = pyramid_jax.make_mesh(data=2, fsdp=4)
    fresh = fresh_state(model, CONFIG)
    on_mesh, _ = restore_or_keep(jax.device_put(fresh, train_state_shardings(fresh, mesh)), checkpointer, LOOP.seed)
    kernel = on_mesh.opt_state[1].nu["single_transformer_blocks"][1]["proj_mlp"]["kernel"].get_value()
    assert kernel.sharding.spec == jax.sharding.PartitionSpec("fsdp", None)
    for got, want in zip(leaves(on_mesh), leaves(straight)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="seed"):
        restore_or_keep(fresh_state(model, CONFIG), checkpointer, seed=LOOP.seed + 1)
    checkpointer.close()
