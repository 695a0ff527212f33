"""The training loop: steps, AR unit allocation, logging, periodic checkpoints and exact resumption.

Everything a step depends on is a function of the run's seed and the step number (the step key is
`fold_in(key(seed), step)`, the data source restarts at a given step, the unit allocation cycles with the step),
so a run restored from a checkpoint continues exactly as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, Iterator

import jax
import numpy as np

from pyramid_jax.training.checkpoint import TrainCheckpointer
from pyramid_jax.training.objective import KeyRandomness, PyramidObjective
from pyramid_jax.training.train_state import TrainState
from pyramid_jax.training.train_step import Batch
from pyramid_jax.training.units import stage_units

# batches(start_step) -> the run's batches from that step on (one per step)
BatchSource = Callable[[int], Iterator[Batch]]


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


@functools.lru_cache(maxsize=64)
def image_tokens(objective: PyramidObjective, latents_shape: tuple[int, ...], units) -> int:
    """Image tokens (2x2 patches) the DiT sees for one batch, history included."""
    inputs = jax.eval_shape(lambda k: objective.inputs(jax.numpy.zeros(latents_shape), KeyRandomness(k), units),
                            jax.random.key(0))
    return sum(int(np.prod(c.shape[:4])) // 4 for clips in inputs.sample for c in clips)


def restore_or_keep(state: TrainState, checkpointer: TrainCheckpointer | None, seed: int) -> TrainState:
    """The newest checkpoint's state, laid out like `state` (so a new mesh is fine), else `state` itself."""
    if checkpointer is None or checkpointer.latest_step() is None:
        return state
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    restored, record = checkpointer.restore(target)
    if record.get("seed") != seed:
        raise ValueError(f"the checkpoint was written by a run with seed {record.get('seed')}, this run has {seed}: "
                         "resuming would not continue it")
    return restored


def train(state: TrainState, step_fn: Callable, batches: BatchSource, objective: PyramidObjective,
          config: LoopConfig, checkpointer: TrainCheckpointer | None = None, record: dict | None = None,
          log: Callable[[str], None] = print) -> TrainState:
    """Runs `step_fn` from `state.step` to `config.num_steps`, saving every `save_every` steps and at the end."""
    step = int(state.step)
    window, tokens, started = [], 0, time.perf_counter()
    source = batches(step)
    while step < config.num_steps:
        batch = next(source)
        if config.temporal_pyramid:
            batch = dataclasses.replace(batch, units=stage_units(
                step + 1, config.max_units, objective.num_stages, available=batch.latents.shape[1]))
        state, metrics = step_fn(state, batch, step_key(config.seed, step))
        step += 1
        window.append(metrics)
        tokens += image_tokens(objective, tuple(batch.latents.shape), batch.units)
        if step % config.log_every == 0 or step == config.num_steps:
            seconds = time.perf_counter() - started
            values = jax.device_get(window)
            losses = [float(m["loss"]) for m in values if not m["skipped"]]
            log(f"step {step}: loss {np.mean(losses) if losses else float('nan'):.4f} "
                f"lr {float(values[-1]['learning_rate']):.3g} skipped {sum(bool(m['skipped']) for m in values)} "
                f"| {len(values) / seconds:.2f} steps/s {tokens / seconds:.0f} tokens/s")
            window, tokens, started = [], 0, time.perf_counter()
        if checkpointer is not None and (step % config.save_every == 0 or step == config.num_steps):
            checkpointer.save(state, {"seed": config.seed, "step": step, **(record or {})})
    if checkpointer is not None:
        checkpointer.wait()
    return state
