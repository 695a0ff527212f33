"""AdamW as the reference trains with it (pipeline_spec.md §6a), with the learning rate applied by the step.

The learning rate is indexed by the train step counter, which also counts skipped steps (like the reference's
`lr_schedule_values[start_steps]`), while Adam's bias correction counts only applied updates (a skipped step never
calls `optimizer.step()`). So the optax chain stops before the learning-rate scaling and `learning_rate(step)`
is applied by the train step.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Defaults of `train_pyramid_flow.sh` (the AR video script; the non-AR/t2i script uses lr 1e-4)."""

    learning_rate: float = 5e-5
    warmup_steps: int = 1000  # linear from warmup_start to learning_rate over this many steps
    warmup_start: float = 1e-6
    decay_steps: int = 0  # 0: constant after the warmup; else cosine to min_learning_rate over this many steps
    min_learning_rate: float = 0.0
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 1e-4  # on matrices only; biases and norm scales (ndim <= 1) are not decayed
    max_grad_norm: float = 1.0


def learning_rate(config: OptimizerConfig, step: jax.Array) -> jax.Array:
    """`linspace(warmup_start, lr, warmup_steps)[step]`, then `lr` (the DiT's `constant_with_warmup`) or, with
    `decay_steps` N, `min + (lr - min) (1 + cos(pi i / N)) / 2` at step `warmup + i` (the VAE recipe's cosine)."""
    lr = config.learning_rate
    after = lr
    if config.decay_steps > 0:
        cosine = optax.cosine_decay_schedule(lr, config.decay_steps, alpha=config.min_learning_rate / lr)
        after = cosine(jnp.maximum(step - config.warmup_steps, 0))
    if config.warmup_steps <= 1:
        return jnp.asarray(after, jnp.float32)
    warmup = optax.linear_schedule(config.warmup_start, lr, config.warmup_steps - 1)
    return jnp.asarray(jnp.where(step < config.warmup_steps, warmup(step), after), jnp.float32)


def gradient_transform(config: OptimizerConfig) -> optax.GradientTransformation:
    """Global-norm clipping, Adam moments and decoupled weight decay; the result still has to be scaled by -lr."""
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.scale_by_adam(config.b1, config.b2, config.eps),
        optax.add_decayed_weights(config.weight_decay, mask=lambda params: jax.tree.map(lambda p: p.ndim > 1, params)),
    )
