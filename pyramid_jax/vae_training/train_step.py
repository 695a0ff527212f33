"""One VAE optimizer step as a pure jitted function `(state, clips, key) -> (state, metrics)` (vae_spec.md §5).

uint8 clips `[B, T, H, W, 3]` -> [-1, 1] -> an optional random crop -> encode -> posterior sample -> decode -> the
loss of `loss.py`; then the update every trained model shares (`apply_gradients`: clipping, AdamW, guard, EMA).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from pyramid_jax.parallel.compiled import state_step
from pyramid_jax.training.data.frames import to_unit_range
from pyramid_jax.training.optimizer import gradient_transform
from pyramid_jax.training.update import apply_gradients
from pyramid_jax.vae.posterior import DiagonalGaussian
from pyramid_jax.vae_training.config import VAEStepConfig
from pyramid_jax.vae_training.discriminator import (adaptive_weight, disc_factor, generator_loss,
                                                     hinge_discriminator_loss)
from pyramid_jax.vae_training.gan_state import GANTrainState
from pyramid_jax.vae_training.loss import vae_loss
from pyramid_jax.vae_training.lpips import LPIPS


def random_crop(video: jax.Array, key: jax.Array, size: tuple[int, ...]) -> jax.Array:
    """The same random `(height, width)` window of every frame of `video` `[B, T, H, W, C]` (one per step)."""
    if not size:
        return video
    height, width = size
    if height > video.shape[2] or width > video.shape[3]:
        raise ValueError(f"crop {height}x{width} is larger than the {video.shape[2]}x{video.shape[3]} clips")
    top_key, left_key = jax.random.split(key)
    top = jax.random.randint(top_key, (), 0, video.shape[2] - height + 1)
    left = jax.random.randint(left_key, (), 0, video.shape[3] - width + 1)
    return jax.lax.dynamic_slice_in_dim(jax.lax.dynamic_slice_in_dim(video, top, height, 2), left, width, 3)


def make_vae_train_step(graphdef: nnx.GraphDef, config: VAEStepConfig = VAEStepConfig(), lpips: LPIPS | None = None,
                        state_shardings=None, discriminator: nnx.GraphDef | None = None) -> Callable:
    """The jitted step for the VAE `graphdef` (see `split_for_training`); the input state is donated.

    `lpips` (frozen, with its training-mode dropout) is needed when `config.loss.perceptual_weight` > 0; its weights
    are an argument of the compiled step, not constants baked into it. With the `discriminator` graphdef
    (`config.disc_weight` > 0) the state is a `GANTrainState`: from `disc_start` on, the VAE also minimises the
    adaptively weighted generator loss and the discriminator takes a hinge-loss step on the same clips.
    """
    tx = gradient_transform(config.optimizer)
    disc_tx = gradient_transform(config.discriminator.optimizer)
    lpips_graphdef, lpips_state = nnx.split(lpips) if lpips is not None else (None, None)

    def step(state, clips: jax.Array, key: jax.Array, lpips_state):
        crop_key, sample_key, dropout_key = jax.random.split(key, 3)
        video = random_crop(to_unit_range(clips), crop_key, config.crop)
        perceptual = None
        if lpips_state is not None:
            network = nnx.merge(lpips_graphdef, lpips_state)
            perceptual = functools.partial(network, dropout_key=dropout_key)
        vae_state = state if discriminator is None else state.vae

        def reconstruct(params):
            vae = nnx.merge(graphdef, params, vae_state.buffers)
            posterior = DiagonalGaussian.from_moments(vae.encode_clip(video).astype(jnp.float32))
            return vae.decode_clip(posterior.sample(sample_key)).astype(jnp.float32), posterior

        # One forward; the loss and (with the GAN) the generator loss each pull their gradients back through it.
        (recon, posterior), pullback = jax.vjp(reconstruct, vae_state.params)
        (loss, terms), cotangents = jax.value_and_grad(
            lambda r, p: vae_loss(video, r, p, config.loss, perceptual), argnums=(0, 1), has_aux=True)(recon, posterior)
        grads, = pullback(cotangents)
        if discriminator is None:
            state, metrics = apply_gradients(state, loss, grads, tx, config)
            return state, dict(metrics, **terms)

        disc_state = state.discriminator
        critic = nnx.merge(discriminator, disc_state.params, disc_state.buffers)
        g_loss, g_recon = jax.value_and_grad(lambda r: generator_loss(critic(r)))(recon)
        g_grads, = pullback((g_recon, jax.tree.map(jnp.zeros_like, posterior)))
        factor = disc_factor(vae_state.step, config.disc_start)
        # The KL does not reach the decoder, so these are the gradients of the nll the reference weighs against.
        weight = factor * adaptive_weight(_last_kernel(grads), _last_kernel(g_grads), config.disc_weight)
        grads = jax.tree.map(lambda a, b: a + weight * b, grads, g_grads)
        new_vae, metrics = apply_gradients(vae_state, loss + weight * g_loss, grads, tx, config)

        def critic_loss(params):
            d = nnx.merge(discriminator, params, disc_state.buffers)
            return hinge_discriminator_loss(d(video), d(jax.lax.stop_gradient(recon)))

        d_loss, d_grads = jax.value_and_grad(critic_loss)(disc_state.params)
        trained, d_metrics = apply_gradients(disc_state, d_loss, d_grads, disc_tx, config.discriminator)
        new_disc = jax.tree.map(lambda t, old: jnp.where(factor > 0, t, old), trained, disc_state)
        return GANTrainState(new_vae, new_disc), dict(metrics, **terms, g_loss=g_loss, d_weight=weight,
                                                      d_loss=factor * d_loss, d_skipped=d_metrics["skipped"])

    jitted = state_step(step, state_shardings)
    return lambda state, clips, key: jitted(state, clips, key, lpips_state)


def _last_kernel(grads) -> jax.Array:
    """The gradient of the decoder's last conv kernel (the reference's adaptive-weight layer) in VAE gradients."""
    return grads["decoder"]["conv_out"]["kernel"][...]
