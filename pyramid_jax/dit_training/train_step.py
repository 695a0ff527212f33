"""One optimizer step as a pure jitted function `(state, batch, key) -> (state, metrics)` (pipeline_spec.md §6a).

Loss and gradients of the pyramidal flow-matching objective (optionally accumulated over micro-batches),
global-norm clipping, AdamW with the warmup-constant
learning rate, the bad-batch guard (a step whose loss is >= `max_loss` or whose loss or gradient is not finite
leaves weights and optimizer moments untouched and is counted), then the periodic EMA update. Under a mesh the
state keeps the rule table's shardings (FSDP weights and moments), the batch is split over `data` (and `fsdp`), and
the DiT's activations follow the table too (its tokens over `sequence`: sequence parallelism).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx, struct

from pyramid_jax.dit_training.accumulation import accumulated
from pyramid_jax.dit_training.objective import PyramidObjective
from pyramid_jax.dit_training.units import PaddedUnits
from pyramid_jax.parallel.compiled import state_step
from pyramid_jax.sampling import TextConditioning
from pyramid_jax.training.optimizer import OptimizerConfig, gradient_transform
from pyramid_jax.training.train_state import TrainState
from pyramid_jax.training.update import apply_gradients


# XLA's backend (LLVM) optimisation off: on CPU about half the compile seconds and slower steps, the same numbers to
# float rounding (no fast-math either way; the tiny run's weights after 20 steps agree to 4e-8 relative). For short
# CPU runs, where compiling dominates (`TrainConfig.fast_compile`).
FAST_COMPILE = {"xla_backend_optimization_level": 0}


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """What one step computes: the objective, the optimizer, EMA and the bad-batch guard (remat is the DiT's own
    `remat_policy`)."""

    objective: PyramidObjective = PyramidObjective()
    optimizer: OptimizerConfig = OptimizerConfig()
    ema_decay: float = 0.9999
    ema_every: int = 100  # the reference updates its EMA only on steps divisible by 100
    max_loss: float = 2.0  # the reference's exploding-loss guard
    grad_accum: int = 1  # micro-batches per step, gradients averaged (the reference's AR script uses 2)


@struct.dataclass
class Batch:
    """One global batch. `units` selects AR mode (see `stage_units`): static, so a new value compiles a new program
    and each column gets its exact history. `padded_units` (set by `bucketed`) replaces it with runtime unit counts
    and histories padded to a few bucket capacities (`PaddedUnits`): a few programs per cycle, the same loss."""

    latents: jax.Array  # [N, T, H, W, C] normalized latents, N a multiple of sum(sample_ratios)
    text: TextConditioning  # N rows
    units: tuple[int, ...] | None = struct.field(pytree_node=False, default=None)
    padded_units: PaddedUnits | None = None

    def bucketed(self, max_units: int) -> Batch:
        """This AR batch with its units as a runtime input, histories padded to the bucket of `unit_capacities`."""
        if self.units is None:
            return self
        return self.replace(units=None, padded_units=PaddedUnits.bucketed(self.units, max_units))

    @property
    def ar_units(self) -> tuple[int, ...] | PaddedUnits | None:
        """What the objective takes as `units`."""
        return self.units if self.padded_units is None else self.padded_units


def make_train_step(graphdef: nnx.GraphDef, config: StepConfig = StepConfig(),
                    null_text: TextConditioning | None = None, state_shardings=None,
                    model: Callable[[nnx.State, nnx.State], nnx.Module] | None = None,
                    compiler_options: dict | None = None) -> Callable:
    """The jitted step for the DiT `graphdef` (see `split_for_training`); the input state is donated.

    null_text: the empty prompt's encoding (rows `[1, ...]`); it enables the 10% caption dropout.
    state_shardings: from `train_state_shardings`, to keep the state's layout across steps under a mesh; the
        DiT's activations are then constrained on that mesh too (`constrain`: tokens over `sequence`).
    model: `(params, buffers) -> DiT` when the state's params are not the DiT's own (LoRA: `dit_training/lora.py`);
        default `nnx.merge(graphdef, params, buffers)`.
    compiler_options: XLA options of the step's programs, e.g. `FAST_COMPILE`.
    """
    tx = gradient_transform(config.optimizer)
    model = model or functools.partial(nnx.merge, graphdef)

    def forward(params, buffers, sample, *conditioning, **tokens):
        return model(params, buffers)(sample, *conditioning, **tokens)

    def step(state: TrainState, batch: Batch, key: jax.Array):
        def loss_and_grads(latents, text, rand):
            def loss_fn(params):
                dit = functools.partial(forward, params, state.buffers)
                return config.objective.loss(dit, latents, text, rand, batch.ar_units, null_text)

            return jax.value_and_grad(loss_fn)(state.params)

        zero_grads = jax.tree.map(jnp.zeros_like, state.params)  # unused (and dropped) when grad_accum is 1
        if state_shardings is not None:
            zero_grads = jax.lax.with_sharding_constraint(zero_grads, state_shardings.params)
        loss, grads = accumulated(loss_and_grads, batch.latents, batch.text, key, config.grad_accum,
                                  config.objective.columns.num_columns, zero_grads)
        return apply_gradients(state, loss, grads, tx, config)

    return state_step(step, state_shardings, compiler_options)
