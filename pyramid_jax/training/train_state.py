"""The training state as one pytree: master weights, optimizer moments, EMA weights and counters.

The DiT is split once into a graphdef (static, closed over by the jitted step) and its variables. The graphdef can
be rebuilt with another compute dtype: master weights stay in their stored dtype (float32) while every Dense
computes in bfloat16, which is what the reference's `use_mixed_training` (fp32 weights + bf16 autocast) does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pyramid_jax.io import weights
from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, Rules, state_shardings


@struct.dataclass
class TrainState:
    step: jax.Array  # int32: steps taken, skipped ones included (indexes the learning rate and the EMA period)
    params: nnx.State  # the trainable `nnx.Param`s: master weights
    buffers: nnx.State  # every other model variable (e.g. the MMDiT sincos table), never updated
    opt_state: optax.OptState
    ema: nnx.State | None  # exponential moving average of `params`, or None when disabled
    num_skipped: jax.Array  # int32: steps whose update was dropped (non-finite or exploding loss)


def split_for_training(model: nnx.Module, compute_dtype=None,
                       trained: nnx.filterlib.Filter = nnx.Param) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """(graphdef, params, buffers) of a DiT or the VAE: `params` are the variables `trained` selects (every
    `nnx.Param` by default), `buffers` the rest, which training never updates. With `compute_dtype` the graphdef
    computes in it, whatever the parameters' dtype (e.g. bfloat16 matmuls on float32 master weights)."""
    graphdef, params, buffers = nnx.split(model, trained, ...)
    if compute_dtype is not None:
        param_dtype = jax.tree.leaves(params)[0].dtype
        graphdef, _ = weights.abstract_module(
            lambda: type(model)(model.config, rngs=nnx.Rngs(0), dtype=compute_dtype, param_dtype=param_dtype))
    return graphdef, params, buffers


def init_train_state(params: nnx.State, buffers: nnx.State, tx: optax.GradientTransformation,
                     ema: bool = True) -> TrainState:
    """Step 0: fresh optimizer moments, the EMA starting at the initial weights."""
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, buffers=buffers, opt_state=tx.init(params),
                      ema=jax.tree.map(jnp.copy, params) if ema else None, num_skipped=jnp.zeros((), jnp.int32))


def train_state_shardings(state: TrainState, mesh: Mesh, rules: Rules = LOGICAL_AXIS_RULES):
    """NamedShardings for `state` (concrete or abstract): every `nnx.State` (params, buffers, EMA, Adam moments)
    by its variables' logical axes, so optimizer state is sharded like the weights; counters replicated."""
    replicated = NamedSharding(mesh, PartitionSpec())

    def sharding(x):
        return state_shardings(x, mesh, rules) if isinstance(x, nnx.State) else replicated

    return jax.tree.map(sharding, state, is_leaf=lambda x: isinstance(x, nnx.State))
