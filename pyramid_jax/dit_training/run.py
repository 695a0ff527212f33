"""A DiT training run from a `TrainConfig`: model, data, sharded state, resumption, the loop, the export."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import jax
import jax.numpy as jnp

from pyramid_jax.dit.config import dit_config_to_dict
from pyramid_jax.dit.families import family_of_config
from pyramid_jax.dit.load import DIT, load_dit, read_dit_config
from pyramid_jax.dit_training.batches import batch_source
from pyramid_jax.dit_training.config import TrainConfig
from pyramid_jax.dit_training.lora import adapted_model, split_for_lora
from pyramid_jax.dit_training.plan import pyramid_plan
from pyramid_jax.dit_training.train_step import FAST_COMPILE, make_train_step
from pyramid_jax.lora import save_lora
from pyramid_jax.parallel.mesh import make_mesh
from pyramid_jax.sampling import TextConditioning
from pyramid_jax.snapshot import Snapshot
from pyramid_jax.text.encoder import load_text_encoder
from pyramid_jax.training.data import DataSource
from pyramid_jax.training.data.readers import trim_text
from pyramid_jax.training.data.storage import load_text
from pyramid_jax.training.export import export_model
from pyramid_jax.training.loop import start_run, train
from pyramid_jax.training.optimizer import gradient_transform
from pyramid_jax.training.train_state import init_train_state, split_for_training
from pyramid_jax.vae.load import load_vae


def train_dit(config: TrainConfig, log: Callable[[str], None] = print) -> str:
    """Trains (or resumes) the run of `config`; returns the folder of the exported model (a LoRA run: of the
    adapters)."""
    data = config.data
    dtype = jnp.dtype(config.compute_dtype)
    mesh = make_mesh(**dataclasses.asdict(config.mesh))
    snapshot = Snapshot(config.snapshot)
    dit_path = snapshot.dit(config.variant)
    options = dict(remat_policy=config.remat_policy, scan_layers=config.scan_layers)
    lora = config.lora
    if config.from_scratch:
        model = DIT.init(read_dit_config(dit_path, **options), config.loop.seed, jnp.float32, mesh)
    else:
        model = load_dit(dit_path, jnp.dtype(lora.base_dtype) if lora.enabled else jnp.float32, mesh, **options)
    family = family_of_config(model.config).name  # text encoders and latent scaling follow the DiT
    needs_text_encoder = (config.step.objective.text_dropout > 0 and not data.null_text) or (
        data.source is not DataSource.SYNTHETIC and not data.text_features)
    text_encoder = load_text_encoder(snapshot, family, dtype, mesh) if needs_text_encoder else None
    vae = load_vae(snapshot.vae, dtype, mesh) if data.source is DataSource.VIDEOS else None
    batches = batch_source(data, model.config, seed=config.loop.seed, mesh=mesh, family=family,
                           vae=vae, text_encoder=text_encoder, log=log)
    null_text = None
    if config.step.objective.text_dropout > 0:
        if data.null_text:
            null = trim_text(load_text(data.null_text), data.text_tokens, data.null_text)
            null_text = TextConditioning(*(x[None] for x in null))
        else:
            null_text = text_encoder("")

    adapted = None
    if lora.enabled:
        graphdef, params, buffers = split_for_lora(model, lora, config.loop.seed, dtype)
        adapted = adapted_model(graphdef, lora)
    else:
        graphdef, params, buffers = split_for_training(model, dtype)
    state = init_train_state(params, buffers, gradient_transform(config.step.optimizer), ema=config.ema)
    state, shardings, checkpointer, restored = start_run(state, mesh, config.output_dir, config.max_to_keep,
                                                         config.loop.seed, log, save_buffers=not lora.enabled)
    step_fn = make_train_step(graphdef, config.step, null_text, shardings, model=adapted,
                              compiler_options=FAST_COMPILE if config.fast_compile else None)

    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    log(f"training {n_params / 1e6:.3g}M {'LoRA ' if lora.enabled else ''}parameters on {jax.device_count()} "
        f"{jax.devices()[0].platform} "
        f"device(s) in {jax.process_count()} process(es), mesh {dict(mesh.shape)}, {config.compute_dtype} compute, "
        f"{data.source.value} data")
    record = {"config": json.loads(json.dumps(dataclasses.asdict(config), default=str))}
    plan = pyramid_plan(config.step.objective, config.loop, model.config)
    state = train(state, step_fn, batches, plan, config.loop, checkpointer, record, log=log,
                  data_state=restored.get("data"))
    checkpointer.close()
    if lora.enabled:
        folder = save_lora(os.path.join(config.output_dir, "lora"), state.ema if config.ema else state.params, lora,
                           model.config)
    else:
        exported = model.config.replace(remat_policy="none", scan_layers=False)  # run-time knobs, not the model's
        folder = export_model(state, dit_config_to_dict(exported), os.path.join(config.output_dir, "model"))
    log(f"done: step {int(state.step)}, {int(state.num_skipped)} skipped step(s); model -> {folder}")
    return folder
