"""Resume falls back to the newest intact checkpoint (the broken one is moved aside, and the log says so); with
none intact the run stops naming each checkpoint and why."""

import os
import shutil
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pyramid_jax.training.checkpoint import CheckpointError, TrainCheckpointer
from pyramid_jax.training.loop import restore_or_keep


class State(NamedTuple):
    """The parts of a `TrainState` the checkpointer and the resume touch."""

    step: jax.Array
    weight: jax.Array
    buffers: jax.Array

    def replace(self, **changes):
        return self._replace(**changes)


def state(step):
    return State(jnp.asarray(step, jnp.int32), jnp.full((4, 4), float(step)), jnp.zeros(2))


def saved_run(directory, steps=(2, 4)):
    checkpointer = TrainCheckpointer(str(directory), max_to_keep=3, async_save=False)
    for step in steps:
        checkpointer.save(state(step), {"seed": 0, "step": step})
    checkpointer.close()


def break_checkpoint(directory, step):
    """Deletes the array data of `step` (a lost shard), keeping its metadata."""
    root = os.path.join(directory, str(step), "state")
    removed = [os.path.join(folder, name) for folder, _, files in os.walk(root) for name in files
               if "d" in os.path.relpath(folder, root).split(os.sep) or name.startswith("ocdbt")]
    assert removed
    for path in removed:
        os.remove(path)


def test_a_broken_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    saved_run(tmp_path)
    break_checkpoint(str(tmp_path), 4)
    logs = []
    restored, record = restore_or_keep(state(0), TrainCheckpointer(str(tmp_path)), seed=0, log=logs.append)
    assert int(restored.step) == 2 and record["step"] == 2
    np.testing.assert_array_equal(restored.weight, np.full((4, 4), 2.0))
    assert len(logs) == 1 and "cannot be restored" in logs[0] and "resumed from step 2" in logs[0]
    assert sorted(os.listdir(tmp_path)) == ["2", "broken-4"]
    checkpointer = TrainCheckpointer(str(tmp_path), async_save=False)  # the run goes on past step 4 again
    checkpointer.save(state(4), {"seed": 0, "step": 4})
    assert checkpointer.latest_step() == 4


def test_no_intact_checkpoint_stops_naming_each_and_moves_nothing(tmp_path):
    saved_run(tmp_path)
    for step in (2, 4):
        break_checkpoint(str(tmp_path), step)
    with pytest.raises(CheckpointError, match=rf"no checkpoint in {tmp_path} can be restored: step 4: .*; step 2"):
        restore_or_keep(state(0), TrainCheckpointer(str(tmp_path)), seed=0, log=print)
    assert sorted(os.listdir(tmp_path)) == ["2", "4"]


def test_a_whole_missing_state_folder_also_falls_back(tmp_path):
    saved_run(tmp_path)
    shutil.rmtree(tmp_path / "4" / "state")
    restored, _ = restore_or_keep(state(0), TrainCheckpointer(str(tmp_path)), seed=0, log=lambda _: None)
    assert int(restored.step) == 2


def test_a_second_run_into_the_same_output_folder_is_refused(tmp_path):
    from pyramid_jax.training.run_lock import RunLockedError, lock_output_dir

    held = lock_output_dir(str(tmp_path))
    with pytest.raises(RunLockedError, match=rf"{tmp_path} is in use by another training run \(pid {os.getpid()}"):
        lock_output_dir(str(tmp_path))
    held.close()  # the first run ended (or was killed): the folder is free again
    lock_output_dir(str(tmp_path)).close()
