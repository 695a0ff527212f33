"""Checkpoints: a killed run resumes bit-identically; a checkpoint restores under another mesh; keep-N."""

import itertools
import os

import jax
import numpy as np
import pytest

import pyramid_jax
from pyramid_jax.training.checkpoint import TrainCheckpointer
from pyramid_jax.training.loop import LoopConfig, restore_or_keep, train
from pyramid_jax.training.objective import PyramidObjective
from pyramid_jax.training.optimizer import OptimizerConfig
from pyramid_jax.training.train_state import split_for_training, train_state_shardings
from pyramid_jax.training.train_step import StepConfig, make_train_step

from test_train_step import SNAPSHOT_DIT, compile_step, fresh_state, synthetic_batch

# image mode with one stage: the smallest program that still runs the whole step
CONFIG = StepConfig(objective=PyramidObjective(sample_ratios=(1,), stage_range=(0, 1)),
                    optimizer=OptimizerConfig(learning_rate=1e-3, warmup_steps=3), ema_decay=0.5, ema_every=2,
                    max_loss=float("inf"))
LOOP = LoopConfig(num_steps=6, seed=3, temporal_pyramid=False, log_every=3, save_every=2)


class Killed(Exception):
    pass


def batches(start, die_at=None):
    for step in itertools.count(start):
        if step == die_at:
            raise Killed
        yield synthetic_batch(seed=step, frames=1, units=None)


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
    logs = []
    straight = train(fresh_state(model, CONFIG), step, batches, CONFIG.objective, LOOP, log=logs.append)
    assert int(straight.step) == 6 and len(logs) == 2
    assert "steps/s" in logs[0] and "tokens/s" in logs[0]

    directory = str(tmp_path / "run")
    checkpointer = TrainCheckpointer(directory, max_to_keep=2)
    with pytest.raises(Killed):
        train(fresh_state(model, CONFIG), step, lambda s: batches(s, die_at=5), CONFIG.objective, LOOP, checkpointer)
    checkpointer.close()  # the process dies; the saves of steps 2 and 4 had been handed over

    checkpointer = TrainCheckpointer(directory, max_to_keep=2)
    resumed = restore_or_keep(fresh_state(model, CONFIG), checkpointer, LOOP.seed)
    assert int(resumed.step) == 4
    resumed = train(resumed, step, batches, CONFIG.objective, LOOP, checkpointer)
    for got, want in zip(leaves(resumed), leaves(straight)):
        np.testing.assert_array_equal(got, want)
    assert sorted(int(d) for d in os.listdir(directory) if d.isdigit()) == [4, 6]

    mesh = pyramid_jax.make_mesh(data=2, fsdp=4)
    fresh = fresh_state(model, CONFIG)
    on_mesh = restore_or_keep(jax.device_put(fresh, train_state_shardings(fresh, mesh)), checkpointer, LOOP.seed)
    kernel = on_mesh.opt_state[1].nu["single_transformer_blocks"][1]["proj_mlp"]["kernel"].get_value()
    assert kernel.sharding.spec == jax.sharding.PartitionSpec("fsdp", None)
    for got, want in zip(leaves(on_mesh), leaves(straight)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="seed"):
        restore_or_keep(fresh_state(model, CONFIG), checkpointer, seed=LOOP.seed + 1)
    checkpointer.close()
