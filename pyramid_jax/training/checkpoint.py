"""Training checkpoints with Orbax: asynchronous saves, the newest N kept, restore into any mesh.

A checkpoint holds the whole `TrainState` (weights, optimizer moments, EMA, step and skip counters) plus a small
JSON record (the run's seed, the data position, the config) that the loop needs to continue exactly where the
run stopped. Restoring takes an abstract state whose leaves carry the shardings wanted now, so a run saved under
one mesh resumes under another.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import orbax.checkpoint as ocp

from pyramid_jax.errors import UserError
from pyramid_jax.training.train_state import TrainState

BROKEN_PREFIX = "broken-"  # a checkpoint that failed to restore is renamed `broken-<step>`: kept, no longer listed


class CheckpointError(UserError):
    """No checkpoint of the run can be restored; the message names each one and why."""


class TrainCheckpointer:
    """`directory/<step>/{state, record}`; saving returns at once and writes in the background."""

    def __init__(self, directory: str, max_to_keep: int = 3, async_save: bool = True, save_buffers: bool = True):
        """save_buffers=False leaves the state's (never updated) buffers out, e.g. a LoRA run's frozen DiT;
        `restore` then returns None in their place (`restore_or_keep` puts the live ones back)."""
        self._save_buffers = save_buffers
        # cleanup_tmp_directories: the half-written checkpoint of a killed run is removed when the next run starts.
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=async_save,
                                               create=True, cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(os.path.abspath(directory), options=options)

    def save(self, state: TrainState, record: dict[str, Any]) -> None:
        """Saves `state` under its step number with the JSON-serialisable `record`."""
        step = int(state.step)
        saved = state if self._save_buffers else state.replace(buffers=None)
        self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(saved),
                                                         record=ocp.args.JsonSave(record)))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, target: TrainState, step: int | None = None) -> tuple[TrainState, dict[str, Any]]:
        """(state, record) of `step` (default: the newest); `target` is the state's tree with
        `jax.ShapeDtypeStruct` leaves carrying the shardings to restore into."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self._manager.directory}")
        wanted = target if self._save_buffers else target.replace(buffers=None)
        restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(wanted),
                                                                       record=ocp.args.JsonRestore()))
        return restored.state, restored.record

    def restore_newest_intact(self, target: TrainState, log: Callable[[str], None] = print
                              ) -> tuple[TrainState, dict[str, Any]] | None:
        """(state, record) of the newest checkpoint that restores, None when there is none. Newer ones that fail
        are moved aside (`broken-<step>`, said in the log); when none restores, nothing is moved and a
        `CheckpointError` names each checkpoint and its reason."""
        failures = []
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                restored = self.restore(target, step)
            except Exception as e:  # noqa: BLE001 - any failure (missing shard, bad metadata) means "not intact"
                failures.append((step, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"))
                continue
            for broken, reason in failures:
                path = os.path.join(self._manager.directory, str(broken))
                aside = os.path.join(self._manager.directory, f"{BROKEN_PREFIX}{broken}")
                os.rename(path, aside)
                log(f"checkpoint {path} cannot be restored ({reason}); moved it to {aside} and resumed from step "
                    f"{step} instead")
            if failures:
                self._manager.reload()
            return restored
        if failures:
            raise CheckpointError(f"no checkpoint in {self._manager.directory} can be restored: " + "; ".join(
                f"step {step}: {reason}" for step, reason in failures) + ". Move them away to start afresh")
        return None

    def wait(self) -> None:
        """Blocks until every pending background save is on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()
