"""The training loop: steps, AR unit allocation, logging, periodic checkpoints and exact resumption.

Everything a step depends on is a function of the run's seed and the step number (the step key is
`fold_in(key(seed), step)`, the unit allocation cycles with the step) or is restored from the checkpoint (the data
iterator's state, saved in the checkpoint's record under "data"), so a run restored from a checkpoint continues
exactly as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterator, Protocol

import jax
import numpy as np

from pyramid_jax.training.checkpoint import TrainCheckpointer
from pyramid_jax.training.objective import PyramidObjective
from pyramid_jax.training.throughput import step_cost, throughput_report
from pyramid_jax.training.train_state import TrainState
from pyramid_jax.training.train_step import Batch
from pyramid_jax.training.units import stage_units


class BatchSource(Protocol):
    def __call__(self, start_step: int, state: dict[str, Any] | None = None) -> Iterator[Batch]:
        """The run's batches (one per step) from `start_step` on, or from a saved iterator `state`. An iterator
        with a `get_state()` method has that JSON state saved with every checkpoint."""


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    num_steps: int
    seed: int = 42
    temporal_pyramid: bool = True  # AR mode: allocate units per stage each step; False trains every frame
    max_units: int = 16  # AR positions cycled through (latent frames of the longest clip)
    log_every: int = 10
    save_every: int = 1000


def step_key(seed: int, step: int) -> jax.Array:
    return jax.random.fold_in(jax.random.key(seed), step)


def restore_or_keep(state: TrainState, checkpointer: TrainCheckpointer | None,
                    seed: int) -> tuple[TrainState, dict[str, Any]]:
    """The newest checkpoint's (state, record), the state laid out like `state` (so a new mesh is fine), else
    (`state`, {})."""
    if checkpointer is None or checkpointer.latest_step() is None:
        return state, {}
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    restored, record = checkpointer.restore(target)
    if record.get("seed") != seed:
        raise ValueError(f"the checkpoint was written by a run with seed {record.get('seed')}, this run has {seed}: "
                         "resuming would not continue it")
    return restored, record


def train(state: TrainState, step_fn: Callable, batches: BatchSource, objective: PyramidObjective,
          config: LoopConfig, checkpointer: TrainCheckpointer | None = None, record: dict | None = None,
          log: Callable[[str], None] = print, data_state: dict | None = None, dit_config=None) -> TrainState:
    """Runs `step_fn` from `state.step` to `config.num_steps`, saving every `save_every` steps and at the end.

    `data_state`: the record's "data" entry of the checkpoint `state` came from. `dit_config`: the trained DiT's
    config, for the FLOP count behind the logged TFLOP/s and MFU.
    """
    step = int(state.step)
    window, tokens, flops, started = [], 0, 0, time.perf_counter()
    source = batches(step, data_state)
    while step < config.num_steps:
        batch = next(source)
        if config.temporal_pyramid:
            batch = dataclasses.replace(batch, units=stage_units(
                step + 1, config.max_units, objective.num_stages, available=batch.latents.shape[1]))
        state, metrics = step_fn(state, batch, step_key(config.seed, step))
        step += 1
        window.append(metrics)
        cost = step_cost(objective, tuple(batch.latents.shape), batch.text.embeds.shape[1], batch.units, dit_config)
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
    return state
