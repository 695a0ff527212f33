"""Train (or finetune) a Pyramid Flow DiT with the pyramidal flow-matching objective, or the causal video VAE.

    python train.py --config configs/train/tiny.py                       # CPU smoke run on the tiny snapshot
    python train.py --config configs/train/shapes_vae.py                 # a VAE run (the config is a VAETrainConfig)
    python train.py --config configs/train/miniflux_384p_ar.py snapshot=pyramid-flow-miniflux mesh.fsdp=8
    python train.py --config configs/train/tiny.py loop.num_steps=20 step.optimizer.learning_rate=1e-3
    python train.py --config configs/train/tiny.py lora.rank=16 lora.targets=attn    # LoRA: adapters only
    python train.py --config configs/train/miniflux_384p_ar.py data.source=latents data.annotation=train.jsonl \
        data.null_text=features/null_text.npz                           # latents from tools/extract_*.py

Overrides are dotted `key=value` pairs over the config's fields (an unknown key is an error). The run resumes
from the newest checkpoint in `<output_dir>/checkpoints` when there is one, data order included, and ends by
writing the trained model (EMA weights when kept) to `<output_dir>/model`, a folder the pipeline loads (a LoRA
run: only the adapters, to `<output_dir>/lora`, for `sample.py --lora`). On a
multi-host pod every host runs the same command (`distributed=auto` initializes JAX's distributed runtime) and
reads its own share of each batch.

Compiled programs are kept in the persistent compilation cache (default ~/.cache/pyramid_jax/xla, or
$JAX_COMPILATION_CACHE_DIR; --compile-cache DIR moves it, --no-compile-cache turns it off), so a rerun of the same
sizes skips compiling; each program's compile seconds are logged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="a configs/train/<name>.py file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. loop.num_steps=100")
    from pyramid_jax.compile_cache import add_compile_cache_flags
    from pyramid_jax.errors import add_debug_flag

    add_compile_cache_flags(p)
    add_debug_flag(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    from pyramid_jax.errors import run_cli

    return run_cli(run, argv)


def run(argv) -> int:
    args = parse_args(argv)
    from pyramid_jax.config import ConfigError
    from pyramid_jax.training.config import apply_overrides, load_train_config

    try:
        config = apply_overrides(load_train_config(args.config), args.overrides)
    except (ConfigError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")

    from pyramid_jax.parallel import distributed

    distributed.initialize(config.distributed)  # before anything touches a device

    import jax

    from pyramid_jax.training.run_lock import lock_output_dir

    from pyramid_jax.compile_cache import setup_compile_cache

    log = print if jax.process_index() == 0 else (lambda _: None)
    setup_compile_cache(args, log)
    _lock = lock_output_dir(config.output_dir) if jax.process_index() == 0 else None  # held while this runs
    from pyramid_jax.vae_training.config import VAETrainConfig

    if isinstance(config, VAETrainConfig):
        from pyramid_jax.training.data import DataError
        from pyramid_jax.vae_training.run import train_vae

        try:
            train_vae(config, log)
        except (DataError, ValueError, FileNotFoundError) as e:
            sys.exit(f"error: {e}")
        return 0

    import jax.numpy as jnp

    import pyramid_jax
    from pyramid_jax.dit.config import dit_config_to_dict
    from pyramid_jax.dit.load import DIT, read_dit_config
    from pyramid_jax.dit.families import family_of_config
    from pyramid_jax.sampling import TextConditioning
    from pyramid_jax.snapshot import Snapshot
    from pyramid_jax.training.data import DataError, DataSource
    from pyramid_jax.training.data.source import batch_source
    from pyramid_jax.training.data.storage import load_text
    from pyramid_jax.training.export import export_model
    from pyramid_jax.training.loop import pyramid_plan, start_run, train
    from pyramid_jax.training.optimizer import gradient_transform
    from pyramid_jax.training.train_state import init_train_state, split_for_training
    from pyramid_jax.training.train_step import make_train_step

    data = config.data
    dtype = jnp.dtype(config.compute_dtype)
    mesh = pyramid_jax.make_mesh(**dataclasses.asdict(config.mesh))
    snapshot = Snapshot(config.snapshot)
    dit_path, options = snapshot.dit(config.variant), dict(remat_policy=config.remat, scan_layers=config.scan_layers)
    lora = config.lora
    if config.from_scratch:
        model = DIT.init(read_dit_config(dit_path, **options), config.loop.seed, jnp.float32, mesh)
    else:
        model = pyramid_jax.load_dit(dit_path, jnp.dtype(lora.base_dtype) if lora.enabled else jnp.float32, mesh,
                                     **options)
    model_name = family_of_config(model.config).name  # text encoders and latent scaling follow the DiT
    needs_text_encoder = (config.step.objective.text_dropout > 0 and not data.null_text) or (
        data.source is not DataSource.SYNTHETIC and not data.text_features)
    text_encoder = pyramid_jax.load_text_encoder(snapshot, model_name, dtype, mesh) \
        if needs_text_encoder else None
    vae = pyramid_jax.load_vae(snapshot.vae, dtype, mesh) \
        if data.source is DataSource.VIDEOS else None
    try:
        batches = batch_source(data, model.config, seed=config.loop.seed, mesh=mesh, model_name=model_name,
                               vae=vae, text_encoder=text_encoder, log=log)
        null_text = None
        if config.step.objective.text_dropout > 0:
            null_text = TextConditioning(*(x[None] for x in load_text(data.null_text))) if data.null_text else \
                TextConditioning(*text_encoder(""))
    except (DataError, ValueError) as e:
        sys.exit(f"error: {e}")

    adapted = None
    if lora.enabled:
        from pyramid_jax.lora.training import adapted_model, split_for_lora

        graphdef, params, buffers = split_for_lora(model, lora, config.loop.seed, dtype)
        adapted = adapted_model(graphdef, lora)
    else:
        graphdef, params, buffers = split_for_training(model, dtype)
    state = init_train_state(params, buffers, gradient_transform(config.step.optimizer), ema=config.ema)
    state, shardings, checkpointer, restored = start_run(state, mesh, config.output_dir, config.max_to_keep,
                                                         config.loop.seed, log, save_buffers=not lora.enabled)
    step_fn = make_train_step(graphdef, config.step, null_text, shardings, model=adapted)

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
        from pyramid_jax.lora import save_lora

        folder = save_lora(os.path.join(config.output_dir, "lora"), state.ema if config.ema else state.params, lora,
                           model.config)
    else:
        exported = model.config.replace(remat_policy="none", scan_layers=False)  # run-time knobs, not the model's
        folder = export_model(state, dit_config_to_dict(exported), os.path.join(config.output_dir, "model"))
    log(f"done: step {int(state.step)}, {int(state.num_skipped)} skipped step(s); model -> {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
