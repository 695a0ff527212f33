"""Accelerator speed of the release DiT (random weights): forward seconds and MFU per attention backend at the
384p and 768p last-unit shapes, a 384p temp-16 video's seconds (DiT only), the 384p AR train step's MFU, and the
compile seconds of each. Sized for one H100 in at most 8 minutes (`--budget`); parts that would start past the
budget are skipped and say so.

    python bench/accelerator.py                 # release miniFLUX, bf16, on the default device
    python bench/accelerator.py --tiny          # smoke mode: tiny DiT and shapes, runs on a CPU in well under a minute

MFU is the analytic model FLOPs of `dit_training/flops.py` per second over the device's dense bf16 peak
(`training/throughput.py`; none on a CPU). The video uses random text conditioning (no text encoder) and no VAE.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_models import bench_config  # noqa: E402
from dit_forward import sampler_call  # noqa: E402
from fit import RESOLUTIONS, TEXT_LEN, TINY_RESOLUTIONS, TRAIN_RECIPES, busiest_units, tiny_overrides  # noqa: E402
from pyramid_jax.dit.apply import dit_forward  # noqa: E402
from pyramid_jax.dit.load import DIT  # noqa: E402
from pyramid_jax.dit_training.flops import dit_forward_flops  # noqa: E402
from pyramid_jax.dit_training.train_step import Batch, make_train_step  # noqa: E402
from pyramid_jax.layers.attention import available_backends  # noqa: E402
from pyramid_jax.parallel.compiled import PlacedModel  # noqa: E402
from pyramid_jax.sampling.noise import KeyNoise  # noqa: E402
from pyramid_jax.sampling.sampler import PyramidSampler, TextConditioning  # noqa: E402
from pyramid_jax.training.config import load_train_config  # noqa: E402
from pyramid_jax.training.optimizer import gradient_transform  # noqa: E402
from pyramid_jax.training.throughput import peak_flops, throughput_report  # noqa: E402
from pyramid_jax.training.train_state import init_train_state, split_for_training  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls of `fn` (after one untimed call)."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def mfu(flops: float, seconds: float) -> str:
    peak = peak_flops(jax.devices()[0])
    return f"{flops / seconds / 1e12:.1f} TFLOP/s" + ("" if peak is None else f", MFU {100 * flops / seconds / peak:.1f}%")


def forward(config, state, shape, repeats: int) -> str:
    """One CFG DiT call at the last unit's full-resolution stage: compile and forward seconds, MFU."""
    graphdef, _ = DIT.abstract(config, jnp.bfloat16)
    inputs = sampler_call(config, shape.height, shape.width, shape.temp - 1, jnp.bfloat16, jax.random.key(1))
    start = time.perf_counter()
    compiled = dit_forward.compile(PlacedModel.from_split(graphdef, state), *inputs)
    compile_s = time.perf_counter() - start
    seconds = timed(lambda: compiled(*inputs), repeats)
    flops = dit_forward_flops(config, [[c.shape for c in inputs[0][0]]], TEXT_LEN)
    return f"compile {compile_s:.1f} s, forward {seconds * 1e3:.1f} ms, {mfu(flops, seconds)}"


def video(dit, shape, steps, video_steps) -> str:
    """A whole t2v video (CFG, random text): the first (compiling) run and a second, warm one."""
    cfg = dit.config
    keys = jax.random.split(jax.random.key(2), 3)
    text = TextConditioning(jax.random.normal(keys[0], (2, TEXT_LEN, cfg.joint_attention_dim), jnp.bfloat16),
                            jnp.ones((2, TEXT_LEN), jnp.int32),
                            jax.random.normal(keys[1], (2, cfg.pooled_projection_dim), jnp.bfloat16))
    sampler = PyramidSampler(dit)
    noise = KeyNoise(keys[2], 1, shape.height, shape.width, cfg.latent_channels, sampler.scheduler.stages,
                     sampler.scheduler.gamma, jnp.bfloat16)
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        jax.block_until_ready(sampler.video(text, noise, shape.temp, steps, video_steps, 7.0, 5.0))
        runs.append(time.perf_counter() - start)
    return f"first {runs[0]:.1f} s (compiles ~{runs[0] - runs[1]:.1f} s), warm {runs[1]:.1f} s"


def train(config, shape, repeats: int) -> str:
    """The recipe's AR train step on one device (its per-device micro-batch, remat, scan), fp32 master weights."""
    recipe = load_train_config(TRAIN_RECIPES["384p"])
    config = config.replace(remat_policy=recipe.remat_policy, scan_layers=recipe.scan_layers)
    graphdef, params, buffers = split_for_training(DIT.init(config, dtype=jnp.float32), jnp.bfloat16)
    step_config = dataclasses.replace(recipe.step, grad_accum=1)
    state = init_train_state(params, buffers, gradient_transform(step_config.optimizer))
    n = recipe.data.batch_size // 8 // recipe.step.grad_accum  # the recipe's micro-batch per GPU
    shape_ = (n, shape.temp, shape.height, shape.width, config.latent_channels)
    units, cost = busiest_units(step_config.objective, shape_, config)
    keys = jax.random.split(jax.random.key(3), 3)
    batch = Batch(jax.random.normal(keys[0], shape_),
                  TextConditioning(jax.random.normal(keys[1], (n, TEXT_LEN, config.joint_attention_dim)),
                                   jnp.ones((n, TEXT_LEN), jnp.int32),
                                   jax.random.normal(keys[2], (n, config.pooled_projection_dim))), units)
    step = make_train_step(graphdef, step_config)
    start = time.perf_counter()
    compiled = step.lower(state, batch, jax.random.key(0)).compile()
    compile_s = time.perf_counter() - start
    holder = [state]

    def run():
        holder[0], metrics = compiled(holder[0], batch, jax.random.key(0))
        return metrics

    seconds = timed(run, repeats)
    return (f"batch {n}, AR units {units}, compile {compile_s:.1f} s, step {seconds:.3f} s | "
            f"{throughput_report(1, seconds, cost.tokens, cost.flops, jax.devices()[:1])}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="miniflux", choices=("miniflux", "sd3"))
    parser.add_argument("--backends", default=",".join(available_backends()[1:]),
                        help="attention backends (default: every one this platform runs, `auto` left out)")
    parser.add_argument("--budget", type=float, default=480, help="seconds; later parts are skipped past it")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="tiny DiT and shapes (a CPU smoke run)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    resolutions = TINY_RESOLUTIONS if args.tiny else RESOLUTIONS
    overrides = tiny_overrides(args.model) if args.tiny else {}
    steps, video_steps = ((2, 2, 2), (1, 1, 1)) if args.tiny else ((20, 20, 20), (10, 10, 10))
    print(f"{args.model}{' (tiny)' if args.tiny else ''}, bf16, random weights, on {jax.devices()[0].device_kind}")

    def part(name, fn):
        if time.perf_counter() - start > args.budget:
            print(f"{name}: skipped (past the {args.budget:.0f} s budget)", flush=True)
            return
        try:
            print(f"{name}: {fn()}", flush=True)
        except Exception as e:  # e.g. out of memory at 768p with a dense backend: report it, go on
            print(f"{name}: failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}", flush=True)

    base = bench_config(f"{args.model}_384p", **overrides)
    dit = DIT.init(base, dtype=jnp.bfloat16)
    state = nnx.state(dit)
    for res, shape in resolutions.items():
        for backend in args.backends.split(","):
            config = base.replace(attention_backend=backend)
            part(f"DiT forward {res} last unit ({backend})", lambda: forward(config, state, shape, args.repeats))
    clip = resolutions["384p"] if not args.tiny else dataclasses.replace(resolutions["384p"], temp=2)
    part(f"video 384p temp {clip.temp}", lambda: video(dit, clip, steps, video_steps))
    del dit, state
    part("train step 384p", lambda: train(base, resolutions["384p"], args.repeats))
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
