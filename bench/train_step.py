"""Train-step time: compile seconds, steady-state seconds per step, image tokens/s, model TFLOP/s and MFU.

    python bench/train_step.py                                   # tiny snapshot miniFLUX, AR step, fp32
    python bench/train_step.py --preset miniflux_384p --layers 2 --height 48 --width 80 --frames 4 --dtype bf16
    python bench/train_step.py --image                           # non-AR: every frame of the clip at once

    python bench/train_step.py --cycle                           # programs + compile seconds of a unit cycle

One jitted optimizer step (objective, AdamW, EMA, bad-batch guard) on a synthetic batch. AR mode trains the units
(n_low, n_mid, n_high) of `stage_units` at step `--counter`, its history padded to the bucket of
`unit_capacities` as the training loop does (`--exact`: unpadded); tokens are the DiT's image tokens with history.
MFU uses the dense bf16 peak of the device (reported on GPUs and TPUs only). `--cycle` instead runs one step of
every allocation of a whole cycle (max_units = `--frames`), bucketed and exact, and prints the programs each
compiles and their compile seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench_models import bench_dit  # noqa: E402
from pyramid_jax.compile_cache import compile_records, track_compile_times  # noqa: E402
from pyramid_jax.dit_training.objective import PyramidObjective  # noqa: E402
from pyramid_jax.dit_training.plan import step_cost  # noqa: E402
from pyramid_jax.dit_training.train_step import Batch, StepConfig, make_train_step  # noqa: E402
from pyramid_jax.dit_training.units import stage_units  # noqa: E402
from pyramid_jax.layers.remat import REMAT_POLICIES  # noqa: E402
from pyramid_jax.training.data.config import DataConfig  # noqa: E402
from pyramid_jax.training.data.synthetic import synthetic_batches  # noqa: E402
from pyramid_jax.training.optimizer import gradient_transform  # noqa: E402
from pyramid_jax.training.throughput import throughput_report  # noqa: E402
from pyramid_jax.training.train_state import init_train_state, split_for_training  # noqa: E402

DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="release preset (e.g. miniflux_384p) with random weights (default: tiny snapshot)")
    parser.add_argument("--layers", type=int, default=None, help="cut the preset's blocks (each kind) to this many")
    parser.add_argument("--batch", type=int, default=4, help="samples per step (a multiple of 4 columns)")
    parser.add_argument("--frames", type=int, default=3, help="latent frames per clip")
    parser.add_argument("--height", type=int, default=16, help="latent height (384p: 48)")
    parser.add_argument("--width", type=int, default=16, help="latent width (384p: 80)")
    parser.add_argument("--text", type=int, default=128, help="text tokens")
    parser.add_argument("--image", action="store_true", help="non-AR mode (every frame trained)")
    parser.add_argument("--counter", type=int, default=1, help="AR: the unit allocation of this step counter")
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--remat-policy", choices=sorted(REMAT_POLICIES), default="none", help="per-block remat policy")
    parser.add_argument("--scan-layers", action="store_true", help="run the block stacks as one lax.scan")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="matmul dtype (weights stay fp32)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--exact", action="store_true", help="AR: exact (unpadded) histories, not bucketed")
    parser.add_argument("--cycle", action="store_true",
                        help="programs and compile seconds over a whole unit cycle, bucketed and exact")
    args = parser.parse_args()

    track_compile_times()  # records each XLA compilation's seconds
    model = bench_dit(args.preset, args.layers, remat_policy=args.remat_policy, scan_layers=args.scan_layers)
    config = StepConfig(objective=PyramidObjective(), grad_accum=args.grad_accum,
                        max_loss=float("inf"))
    graphdef, params, buffers = split_for_training(model, DTYPES[args.dtype])
    state = init_train_state(params, buffers, gradient_transform(config.optimizer))
    dit = model.config
    data = DataConfig(batch_size=args.batch, frames=args.frames, height=args.height, width=args.width,
                      text_length=args.text)
    host = next(synthetic_batches(data, dit.latent_channels, dit.joint_attention_dim, dit.pooled_projection_dim, 0, 0))
    units = None if args.image else stage_units(args.counter, args.frames, available=args.frames)
    batch = Batch(jnp.asarray(host.samples), jax.tree.map(jnp.asarray, host.text), units)
    if args.cycle:
        print(f"{dit.CLASS_NAME}, batch {args.batch} x {args.frames} x {args.height}x{args.width} latents, "
              f"a cycle of {args.frames} unit allocations, {jax.devices()[0].device_kind}")
        for exact in (False, True):
            state = cycle_programs(graphdef, config, state, batch, args.frames, exact)
        return 0
    if not args.exact:
        batch = batch.bucketed(args.frames)

    step = make_train_step(graphdef, config)
    start = time.perf_counter()
    compiled = step.lower(state, batch, jax.random.key(0)).compile()
    compile_s = time.perf_counter() - start
    state, metrics = compiled(state, batch, jax.random.key(0))
    jax.block_until_ready(metrics)
    times = []
    for i in range(args.repeats):
        start = time.perf_counter()
        state, metrics = compiled(state, batch, jax.random.key(i + 1))
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    cost = step_cost(config.objective, tuple(batch.latents.shape), args.text, units, dit)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    print(f"{dit.CLASS_NAME} {n_params / 1e6:.2f} M params, {args.dtype} compute, remat {args.remat_policy}, "
          f"grad_accum {args.grad_accum}, {jax.devices()[0].device_kind}")
    print(f"batch {args.batch} x {args.frames} x {args.height}x{args.width} latents, "
          f"{'non-AR' if units is None else f'AR units {units}'}"
          f"{'' if batch.padded_units is None else f' (histories padded to {batch.padded_units.capacities})'}: "
          f"{cost.tokens} image tokens, "
          f"{cost.flops / 1e9:.2f} GFLOP per step")
    print(f"compile {compile_s:.2f} s; step {seconds * 1e3:.1f} ms (median of {args.repeats}) | "
          f"{throughput_report(1, seconds, cost.tokens, cost.flops, jax.devices())}")
    return 0


def cycle_programs(graphdef, config, state, batch, max_units, exact):
    """One step of each allocation of a `stage_units` cycle; prints the programs compiled and their seconds."""
    step = make_train_step(graphdef, config)
    seconds, xla, started = [], [], time.perf_counter()
    for counter in range(1, max_units + 1):
        units = stage_units(counter, max_units, available=max_units)
        unit_batch = Batch(batch.latents, batch.text, units)
        if not exact:
            unit_batch = unit_batch.bucketed(max_units)
        before, records, start = step._cache_size(), len(compile_records()), time.perf_counter()
        state, metrics = step(state, unit_batch, jax.random.key(counter))
        jax.block_until_ready(metrics)
        if step._cache_size() > before:
            seconds.append(time.perf_counter() - start)
            xla.append(sum(r.seconds for r in compile_records()[records:]))
    print(f"{'exact' if exact else 'bucketed'}: {len(seconds)} step programs, {sum(seconds):.1f} s to trace, compile "
          f"and run each once (XLA compile {sum(xla):.1f} s: {', '.join(f'{s:.1f}' for s in xla)}); the whole cycle "
          f"{time.perf_counter() - started:.1f} s")
    return state


if __name__ == "__main__":
    sys.exit(main())
