"""A LoRA run in the ordinary training machinery: the `TrainState`'s params are the adapters (so the optimizer,
EMA, clipping and checkpoints see only them), its buffers the whole frozen DiT, and the step's model is the
frozen DiT with the adapters added to its kernels.

The adapted kernels are formed inside the step (`W + scale * A @ B`, float32), which costs one temporary per
adapted kernel and the kernel-sized gradient that is then reduced to A and B.
"""

from __future__ import annotations

from typing import Callable

import jax
from flax import nnx

from pyramid_jax.lora.adapters import apply_adapters, init_adapters
from pyramid_jax.lora.config import LoraConfig
from pyramid_jax.training.train_state import split_for_training


def split_for_lora(model: nnx.Module, config: LoraConfig, seed: int,
                   compute_dtype=None) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """(graphdef, fresh adapters, frozen DiT state: params and buffers) for `init_train_state(adapters, frozen)`."""
    graphdef, params, buffers = split_for_training(model, compute_dtype)
    adapters = init_adapters(params, config, jax.random.fold_in(jax.random.key(seed), 1))
    return graphdef, adapters, nnx.merge_state(params, buffers)


def adapted_model(graphdef: nnx.GraphDef, config: LoraConfig) -> Callable[[nnx.State, nnx.State], nnx.Module]:
    """`(adapters, frozen) -> DiT` for `make_train_step(..., model=...)`."""

    def build(adapters: nnx.State, frozen: nnx.State) -> nnx.Module:
        return nnx.merge(graphdef, apply_adapters(frozen, [(adapters, config.scale)]))

    return build
