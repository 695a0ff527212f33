"""Train (or finetune) a Pyramid Flow DiT with the pyramidal flow-matching objective.

    python train.py --config configs/train/tiny.py                       # CPU smoke run on the tiny snapshot
    python train.py --config configs/train/miniflux_384p_ar.py snapshot=pyramid-flow-miniflux mesh.fsdp=8
    python train.py --config configs/train/tiny.py loop.num_steps=20 step.optimizer.learning_rate=1e-3

Overrides are dotted `key=value` pairs over the config's fields (an unknown key is an error). The run resumes
from the newest checkpoint in `<output_dir>/checkpoints` when there is one.
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
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from pyramid_jax.config import ConfigError
    from pyramid_jax.training.config import apply_overrides, load_train_config

    try:
        config = apply_overrides(load_train_config(args.config), args.overrides)
    except (ConfigError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")

    import jax
    import jax.numpy as jnp

    import pyramid_jax
    from pyramid_jax.sampling import TextConditioning
    from pyramid_jax.text.encoder import load_text_encoder
    from pyramid_jax.training.checkpoint import TrainCheckpointer
    from pyramid_jax.training.data import synthetic_source
    from pyramid_jax.training.loop import restore_or_keep, train
    from pyramid_jax.training.optimizer import gradient_transform
    from pyramid_jax.training.train_state import init_train_state, split_for_training, train_state_shardings
    from pyramid_jax.training.train_step import make_train_step, place_batch

    if config.data.source != "synthetic":
        sys.exit(f"error: data.source {config.data.source!r} is not available; use 'synthetic'")
    mesh = pyramid_jax.make_mesh(**dataclasses.asdict(config.mesh))
    model = pyramid_jax.load_dit(os.path.join(config.snapshot, config.variant), jnp.float32, mesh)
    graphdef, params, buffers = split_for_training(model, jnp.dtype(config.compute_dtype))
    state = init_train_state(params, buffers, gradient_transform(config.step.optimizer), ema=config.ema)
    shardings = train_state_shardings(state, mesh)
    state = jax.device_put(state, shardings)
    checkpointer = TrainCheckpointer(os.path.join(config.output_dir, "checkpoints"), config.max_to_keep)
    state = restore_or_keep(state, checkpointer, config.loop.seed)
    if int(state.step):
        print(f"resumed at step {int(state.step)} from {config.output_dir}/checkpoints")

    null_text = None
    if config.step.objective.text_dropout > 0:
        null_text = TextConditioning(*load_text_encoder(config.snapshot, config.model_name, mesh=mesh)(""))
    step_fn = make_train_step(graphdef, config.step, null_text, shardings)
    dit = model.config
    source = synthetic_source(config.data, dit.latent_channels, dit.joint_attention_dim, dit.pooled_projection_dim,
                              config.loop.seed)

    def batches(start):
        return (place_batch(b, mesh) for b in source(start))

    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    print(f"training {n_params / 1e6:.1f}M parameters on {jax.device_count()} {jax.devices()[0].platform} "
          f"device(s), mesh {dict(mesh.shape)}, {config.compute_dtype} compute")
    record = {"config": json.loads(json.dumps(dataclasses.asdict(config), default=str))}
    state = train(state, step_fn, batches, config.step.objective, config.loop, checkpointer, record)
    checkpointer.close()
    print(f"done: step {int(state.step)}, {int(state.num_skipped)} skipped step(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
