"""The update every trained model's step shares (`apply_gradients`: clip, AdamW, the bad-batch guard, EMA) and the
placement of a global batch on the mesh (`place_batch`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from pyramid_jax.parallel.rules import LOGICAL_AXIS_RULES, Rules, batch_sharding
from pyramid_jax.training.optimizer import learning_rate
from pyramid_jax.training.train_state import TrainState


def place_batch(batch, mesh: Mesh, rules: Rules = LOGICAL_AXIS_RULES):
    """The global batch (a pytree of arrays) on `mesh`, every leaf split along its leading (sample) axis, from this
    process's rows of it (the rows `host_rows` gives it; with one process, all of them)."""

    def place(x):
        shape = (x.shape[0] * jax.process_count(), *x.shape[1:])
        return jax.make_array_from_process_local_data(batch_sharding(mesh, shape, rules), x, shape)

    return jax.tree.map(place, batch)


def apply_gradients(state: TrainState, loss: jax.Array, grads, tx: optax.GradientTransformation,
                    config) -> tuple[TrainState, dict[str, jax.Array]]:
    """The update shared by every trained model: clip + AdamW at `learning_rate(step)`, the bad-batch guard (a
    non-finite or >= `config.max_loss` loss, or a non-finite gradient, leaves weights and moments untouched and is
    counted), then the EMA every `config.ema_every` steps. `config` has `optimizer`, `max_loss`, `ema_decay`,
    `ema_every` (a `StepConfig`, or the VAE's step config)."""
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    lr = learning_rate(config.optimizer, state.step)
    params = jax.tree.map(lambda p, u: (p - lr * u).astype(p.dtype), state.params, updates)

    ok = jnp.isfinite(loss) & (loss < config.max_loss) & jnp.isfinite(grad_norm)
    params, opt_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old),
                                     (params, opt_state), (state.params, state.opt_state))
    ema = state.ema
    if ema is not None:
        d = config.ema_decay
        update = state.step % config.ema_every == 0
        ema = jax.tree.map(lambda e, p: jnp.where(update, e * d + (1 - d) * p, e), ema, params)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema=ema,
                              num_skipped=state.num_skipped + (~ok).astype(jnp.int32))
    return new_state, dict(loss=loss, grad_norm=grad_norm, learning_rate=lr, skipped=~ok)
