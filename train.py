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
    from pyramid_jax.dit_training.config import TrainConfig
    from pyramid_jax.training.config import apply_overrides, load_train_config
    from pyramid_jax.vae_training.config import VAETrainConfig

    try:
        config = apply_overrides(load_train_config(args.config), args.overrides)
        if not isinstance(config, (TrainConfig, VAETrainConfig)):
            raise ConfigError(f"{args.config}: get_config() returned a {type(config).__name__}, not a TrainConfig "
                              "(DiT run) or VAETrainConfig (VAE run)")
    except (ConfigError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")

    from pyramid_jax.parallel import distributed

    distributed.initialize(config.distributed)  # before anything touches a device

    import jax

    from pyramid_jax.dit_training.run import train_dit
    from pyramid_jax.training.data import DataError
    from pyramid_jax.training.run_lock import lock_output_dir
    from pyramid_jax.vae_training.run import train_vae

    from pyramid_jax.compile_cache import setup_compile_cache

    log = print if jax.process_index() == 0 else (lambda _: None)
    setup_compile_cache(args, log)
    _lock = lock_output_dir(config.output_dir) if jax.process_index() == 0 else None  # held while this runs
    try:
        (train_vae if isinstance(config, VAETrainConfig) else train_dit)(config, log)
    except (DataError, ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
