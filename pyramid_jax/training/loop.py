"""The training loop every run shares: steps, the model's plan of each step (`StepPlan`; the DiT's AR unit
allocation), logging, periodic checkpoints and exact resumption.

Everything a step depends on is a function of the run's seed and the step number (the step key is
`fold_in(key(seed), step)`, the DiT's unit allocation cycles with the step) or is restored from the checkpoint (the data
iterator's state, saved in the checkpoint's record under "data"), so a run restored from a checkpoint continues
exactly as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Iterator, Protocol

import jax
import numpy as np

from pyramid_jax.compile_cache import compile_records, track_compile_times
from pyramid_jax.training.checkpoint import TrainCheckpointer
from pyramid_jax.training.throughput import StepCost, throughput_report
from pyramid_jax.training.train_state import TrainState, train_state_shardings
from pyramid_jax.validation import seed_key


class BatchSource(Protocol):
    def __call__(self, start_step: int, state: dict[str, Any] | None = None) -> Iterator[Any]:
        """The run's batches (one per step) from `start_step` on, or from a saved iterator `state`. An iterator
        with a `get_state()` method has that JSON state saved with every checkpoint."""


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    num_steps: int
    seed: int = 42
    temporal_pyramid: bool = True  # DiT AR mode: allocate units per stage each step; False trains every frame
    max_units: int = 16  # DiT AR positions cycled through (latent frames of the longest clip)
    # DiT AR: pad histories to `unit_capacities` buckets (unit counts a runtime input): a cycle of max_units
    # allocations compiles len(history_buckets(max_units)) + 1 step programs, not max_units; the same loss.
    bucket_units: bool = True
    log_every: int = 10
    save_every: int = 1000


# (batch, step number) -> (the batch as the step takes it, what the step costs): the model-specific part of a step.
StepPlan = Callable[[Any, int], tuple[Any, StepCost]]


def step_key(seed: int, step: int) -> jax.Array:
    return jax.random.fold_in(seed_key(seed), step)  # seeds past 2^32 keep their own stream


def restore_or_keep(state: TrainState, checkpointer: TrainCheckpointer | None, seed: int,
                    log: Callable[[str], None] = print) -> tuple[TrainState, dict[str, Any]]:
    """The newest intact checkpoint's (state, record), the state laid out like `state` (so a new mesh is fine),
    else (`state`, {})."""
    if checkpointer is None or checkpointer.latest_step() is None:
        return state, {}
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    restored, record = checkpointer.restore_newest_intact(target, log)
    if restored.buffers is None:  # not saved (a LoRA run's frozen DiT): they never change, so the live ones
        restored = restored.replace(buffers=state.buffers)
    if record.get("seed") != seed:
        raise ValueError(f"the checkpoint was written by a run with seed {record.get('seed')}, this run has {seed}: "
                         "resuming would not continue it")
    return restored, record


def start_run(state, mesh, output_dir: str, max_to_keep: int, seed: int, log: Callable[[str], None] = print,
              save_buffers: bool = True):
    """`state` placed on `mesh` by the rule table, or the run's newest checkpoint in `<output_dir>/checkpoints`
    laid out the same way: `(state, its shardings, the checkpointer, the checkpoint's record or {})`.
    save_buffers=False: checkpoints leave out `state.buffers` (a LoRA run's frozen DiT)."""
    shardings = train_state_shardings(state, mesh)
    state = jax.device_put(state, shardings)
    checkpointer = TrainCheckpointer(os.path.join(output_dir, "checkpoints"), max_to_keep, save_buffers=save_buffers)
    state, record = restore_or_keep(state, checkpointer, seed, log)
    if int(state.step):
        log(f"resumed at step {int(state.step)} from {output_dir}/checkpoints")
    return state, shardings, checkpointer, record


def train(state: TrainState, step_fn: Callable, batches: BatchSource, plan: StepPlan, config: LoopConfig,
          checkpointer: TrainCheckpointer | None = None, record: dict | None = None,
          log: Callable[[str], None] = print, data_state: dict | None = None) -> TrainState:
    """Runs `step_fn` from `state.step` to `config.num_steps`, saving every `save_every` steps and at the end.

    `plan` prepares each batch and counts its cost (the DiT's: `dit_training.plan.pyramid_plan`). `data_state`: the
    record's "data" entry of the checkpoint `state` came from.
    """
    step = int(state.step)
    window, tokens, flops, started = [], 0, 0, time.perf_counter()
    source = batches(step, data_state)
    programs = StepPrograms(step_fn, log)
    while step < config.num_steps:
        batch, cost = plan(next(source), step)
        called = time.perf_counter()
        state, metrics = step_fn(state, batch, step_key(config.seed, step))
        programs.after_step(batch, time.perf_counter() - called)
        step += 1
        window.append(metrics)
        tokens += cost.tokens
        flops = None if cost.flops is None else flops + cost.flops
        if step % config.log_every == 0 or step == config.num_steps:
            seconds = time.perf_counter() - started
            values = jax.device_get(window)
            losses = [float(m["loss"]) for m in values if not m["skipped"]]
            log(f"step {step}: loss {np.mean(losses) if losses else float('nan'):.4f} "
                f"lr {float(values[-1]['learning_rate']):.3g} skipped {sum(bool(m['skipped']) for m in values)} "
                f"| {throughput_report(len(values), seconds, tokens, flops, jax.devices())}")
            window, tokens, flops, started = [], 0, 0, time.perf_counter()
        if checkpointer is not None and (step % config.save_every == 0 or step == config.num_steps):
            data = {"data": source.get_state()} if hasattr(source, "get_state") else {}
            checkpointer.save(state, {"seed": config.seed, "step": step, **data, **(record or {})})
    if checkpointer is not None:
        checkpointer.wait()
    programs.summary()
    return state


class StepPrograms:
    """Counts the step programs jit compiled (its cache size) and logs each new one with the batch's units and the
    seconds of the step call that compiled it (tracing and compiling; XLA's share from `compile_records`), and a
    summary at the end of the run."""

    def __init__(self, step_fn: Callable, log: Callable[[str], None]):
        track_compile_times()
        self.cache_size = getattr(step_fn, "_cache_size", None)
        self.log, self.first = log, self.count()
        self.seconds: list[float] = []
        self.records = len(compile_records())

    def count(self) -> int:
        return 0 if self.cache_size is None else self.cache_size()

    def after_step(self, batch, seconds: float) -> None:
        """After a step call of `seconds` on `batch`."""
        records = compile_records()
        xla = sum(r.seconds for r in records[self.records:])
        self.records = len(records)
        if self.count() <= self.first + len(self.seconds):
            return
        self.seconds.append(seconds)
        padded, units = getattr(batch, "padded_units", None), getattr(batch, "units", None)
        what = (f" (AR units {tuple(int(n) for n in padded.counts)}, histories padded to {padded.capacities})"
                if padded is not None else f" (AR units {units})" if units is not None else "")
        self.log(f"step program {len(self.seconds)}{what}: {seconds:.1f} s to trace and compile"
                 + (f" (XLA {xla:.1f} s)" if xla else ""))

    def summary(self) -> None:
        if self.seconds:
            self.log(f"{len(self.seconds)} step program(s) compiled, {sum(self.seconds):.1f} s in all "
                     f"({', '.join(f'{s:.1f}' for s in self.seconds)} s)")
