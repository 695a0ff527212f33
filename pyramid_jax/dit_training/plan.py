"""The DiT's part of each loop step (`training.loop.StepPlan`): the AR unit allocation of the step, the bucketed
histories, and the image tokens and model FLOPs of the batch for the throughput log."""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp

from pyramid_jax.dit_training.flops import train_step_flops
from pyramid_jax.dit_training.objective import KeyRandomness, PyramidObjective
from pyramid_jax.dit_training.train_step import Batch
from pyramid_jax.dit_training.units import stage_units
from pyramid_jax.training.loop import LoopConfig, StepPlan
from pyramid_jax.training.throughput import StepCost


@functools.lru_cache(maxsize=64)
def step_cost(objective: PyramidObjective, latents_shape: tuple[int, ...], text_len: int,
              units: Sequence[int] | None, dit_config=None) -> StepCost:
    """Tokens and FLOPs of one step on a batch of `latents_shape` `[N, T, H, W, C]` in AR mode `units`."""
    inputs = jax.eval_shape(lambda k: objective.inputs(jnp.zeros(latents_shape), KeyRandomness(k), units),
                            jax.random.key(0))
    sample = [[c.shape for c in clips] for clips in inputs.sample]
    tokens = sum(s[0] * s[1] * s[2] * s[3] // 4 for clips in sample for s in clips)
    return StepCost(tokens, None if dit_config is None else train_step_flops(dit_config, sample, text_len))


def pyramid_plan(objective: PyramidObjective, config: LoopConfig, dit_config=None) -> StepPlan:
    """The DiT's plan: in AR mode the step's unit allocation (cycling with the step), and the image tokens and
    model FLOPs (with `dit_config`, for the logged TFLOP/s and MFU) of the batch."""

    def plan(batch: Batch, step: int) -> tuple[Batch, StepCost]:
        if config.temporal_pyramid:
            batch = dataclasses.replace(batch, units=stage_units(
                step + 1, config.max_units, objective.num_stages, available=batch.latents.shape[1]))
        # the cost of the real (unpadded) tokens
        cost = step_cost(objective, tuple(batch.latents.shape), batch.text.embeds.shape[1], batch.units, dit_config)
        if config.bucket_units:
            batch = batch.bucketed(config.max_units)
        return batch, cost

    return plan
