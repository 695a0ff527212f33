"""A VAE training run from a `VAETrainConfig`: model, data, sharded state, resumption, the loop, the export."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from pyramid_jax.parallel.mesh import make_mesh
from pyramid_jax.training.data.annotations import read_annotations
from pyramid_jax.training.data.errors import BadFiles
from pyramid_jax.training.data.frames import latent_frames
from pyramid_jax.training.data.pipeline import DataPipeline
from pyramid_jax.training.data.readers import SPATIAL_FACTOR, TextReader, VideoReader
from pyramid_jax.training.data.source import Batches
from pyramid_jax.training.export import export_model
from pyramid_jax.training.loop import start_run, train
from pyramid_jax.training.optimizer import gradient_transform
from pyramid_jax.training.throughput import StepCost
from pyramid_jax.training.train_state import init_train_state, split_for_training
from pyramid_jax.training.update import place_batch
from pyramid_jax.vae.conv import CausalConv3d
from pyramid_jax.vae.load import VAE, load_vae, vae_config_to_dict
from pyramid_jax.vae.model import CausalVideoVAE
from pyramid_jax.vae_training.config import VAETrainConfig
from pyramid_jax.vae_training.discriminator import NLayerDiscriminator
from pyramid_jax.vae_training.gan_state import GANTrainState
from pyramid_jax.vae_training.train_step import make_vae_train_step

# The VAE's decoder side: what `VAETrainConfig.decoder_only` trains.
DECODER = nnx.All(nnx.Param, nnx.Any(nnx.PathContains("decoder"), nnx.PathContains("post_quant_conv")))


def vae_plan(clips: jax.Array, step: int) -> tuple[jax.Array, StepCost]:
    """The loop's plan for VAE batches: as they are; the cost counted in latent positions."""
    del step
    b, t, h, w = clips.shape[:4]
    return clips, StepCost(b * latent_frames(t) * (h // SPATIAL_FACTOR) * (w // SPATIAL_FACTOR), None)


def adjust_fresh_vae(vae: CausalVideoVAE, config: VAETrainConfig) -> None:
    """The from-scratch options of `config`: fan-in scaled conv kernels, the posterior's starting log-variance."""
    if config.fan_in_init:
        convs = [module for _, module in nnx.iter_graph(vae) if isinstance(module, CausalConv3d)]
        for i, conv in enumerate(convs):
            kernel, key = conv.kernel, jax.random.fold_in(jax.random.key(config.loop.seed), i)
            scale = 1.0 / np.sqrt(np.prod(kernel.shape[:-1]))
            kernel[...] = (scale * jax.random.normal(key, kernel.shape)).astype(kernel.dtype)
    if config.initial_logvar is not None:
        bias = vae.quant_conv.bias
        bias[...] = bias[...].at[vae.config.latent_channels:].set(config.initial_logvar)


def train_vae(config: VAETrainConfig, log: Callable[[str], None] = print):
    """Trains (or resumes) the run of `config`; returns the folder of the exported model."""
    data, dtype = config.data, jnp.dtype(config.compute_dtype)
    mesh = make_mesh(**dataclasses.asdict(config.mesh))
    if config.from_scratch:
        vae = VAE.init(VAE.read_config(config.vae), config.loop.seed, jnp.float32, mesh)
        adjust_fresh_vae(vae, config)
    else:
        vae = load_vae(config.vae, jnp.float32, mesh, allow_pickle=config.allow_pickle)
    lpips = None
    if config.step.loss.perceptual_weight > 0:
        if not config.lpips:
            raise ValueError("step.loss.perceptual_weight > 0 needs LPIPS weights: set lpips=<path>")
        from pyramid_jax.vae_training.lpips_load import load_lpips

        lpips = load_lpips(config.lpips, dtype=dtype, mesh=mesh, allow_pickle=config.allow_pickle)

    pipeline = DataPipeline(read_annotations(data.annotation),
                            VideoReader(latent_frames(data.frames), (tuple(data.resolution),)), TextReader(False),
                            data.batch_size, config.loop.seed, BadFiles(data.on_error), data.read_threads,
                            data.prefetch, log=log)

    def batches(start: int, state: dict | None = None) -> Batches:
        return Batches(pipeline.iterator(start, state), lambda host, _: place_batch(host.samples, mesh))

    graphdef, params, buffers = split_for_training(vae, dtype, DECODER if config.decoder_only else nnx.Param)
    state = init_train_state(params, buffers, gradient_transform(config.step.optimizer), ema=config.ema)
    critic = None
    if config.step.disc_weight > 0:
        disc = config.step.discriminator
        critic, disc_params, disc_buffers = nnx.split(NLayerDiscriminator(
            3, disc.ndf, disc.n_layers, rngs=nnx.Rngs(config.loop.seed + 1), dtype=dtype), nnx.Param, ...)
        state = GANTrainState(state, init_train_state(disc_params, disc_buffers, gradient_transform(disc.optimizer),
                                                      ema=False))
    state, shardings, checkpointer, restored = start_run(state, mesh, config.output_dir, config.max_to_keep,
                                                         config.loop.seed, log)
    step_fn = make_vae_train_step(graphdef, config.step, lpips, shardings, critic)
    n_params = sum(np.size(x) for x in jax.tree.leaves(state.params))  # the VAE's
    part = "the VAE's decoder" if config.decoder_only else "the VAE"
    log(f"training {part}: {n_params / 1e6:.2f}M parameters on {jax.device_count()} {jax.devices()[0].platform} "
        f"device(s), mesh {dict(mesh.shape)}, {config.compute_dtype} compute, clips of {data.frames} frames "
        f"{data.resolution[0]}x{data.resolution[1]}" + (f" cropped to {config.step.crop}" if config.step.crop else "")
        + (f", PatchGAN from step {config.step.disc_start}" if critic is not None else ""))
    record = {"config": json.loads(json.dumps(dataclasses.asdict(config), default=str))}
    state = train(state, step_fn, batches, vae_plan, config.loop, checkpointer, record, log=log,
                  data_state=restored.get("data"))
    checkpointer.close()
    folder = export_model(state, vae_config_to_dict(vae.config), os.path.join(config.output_dir, "model"))
    log(f"done: step {int(state.step)}, {int(state.num_skipped)} skipped step(s); model -> {folder}")
    return folder
