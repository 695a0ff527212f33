"""DiT forward time: compile seconds, steady-state milliseconds, tokens/s, compiled programs.

    python bench/dit_forward.py                       # the tiny reference snapshot's miniFLUX DiT
    python bench/dit_forward.py --preset miniflux_384p --layers 2   # release width, random weights
    python bench/dit_forward.py --attention-backends xla,chunked      # backends side by side, runs interleaved

Inputs have the shape of a sampler call at the full-resolution stage of unit `--unit` (CFG batch of 2, history
clips at 1/4, 1/2 and full resolution, 128 text tokens).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench_models import bench_dit  # noqa: E402
from pyramid_jax.dit.apply import dit_forward  # noqa: E402
from pyramid_jax.layers.attention import check_backend  # noqa: E402
from pyramid_jax.parallel.compiled import PlacedModel  # noqa: E402

DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


def sampler_call(config, height: int, width: int, unit: int, dtype, key):
    """DiT inputs for stage 2 of AR unit `unit`: history [stage0 clip, stage1 frame, stage2 frame] + current."""
    c = config.latent_channels
    keys = jax.random.split(key, 8)
    clips = []
    if unit >= 3:
        clips.append(jax.random.normal(keys[0], (2, unit - 2, height // 4, width // 4, c), dtype))
    if unit >= 2:
        clips.append(jax.random.normal(keys[1], (2, 1, height // 2, width // 2, c), dtype))
    if unit >= 1:
        clips.append(jax.random.normal(keys[2], (2, 1, height, width, c), dtype))
    clips.append(jax.random.normal(keys[3], (2, 1, height, width, c), dtype))
    text = jax.random.normal(keys[4], (2, 128, config.joint_attention_dim), dtype)
    mask = (jnp.arange(128)[None] < jnp.array([[20], [40]])).astype(jnp.int32)
    pooled = jax.random.normal(keys[5], (2, config.pooled_projection_dim), dtype)
    return [clips], text, mask, pooled, jnp.full((2,), 500.0, dtype)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="release preset (e.g. miniflux_384p) with random weights (default: tiny snapshot)")
    parser.add_argument("--layers", type=int, default=None, help="cut the preset's blocks (each kind) to this many")
    parser.add_argument("--height", type=int, default=48, help="latent height (384p: 48, 768p: 96)")
    parser.add_argument("--width", type=int, default=80, help="latent width (384p: 80, 768p: 160)")
    parser.add_argument("--unit", type=int, default=4, help="autoregressive unit (history length)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--attention-backends", default="auto", help="comma-separated attention backends to compare")
    args = parser.parse_args()
    dtype = DTYPES[args.dtype]
    backends = [check_backend(name) for name in args.attention_backends.split(",")]

    runs, compile_s = {}, {}
    for backend in backends:
        dit = bench_dit(args.preset, args.layers, dtype, attention_backend=backend)
        model = PlacedModel(dit)
        inputs = sampler_call(dit.config, args.height, args.width, args.unit, dtype, jax.random.key(0))
        start = time.perf_counter()
        runs[backend] = functools.partial(dit_forward.compile(model, *inputs), *inputs)
        compile_s[backend] = time.perf_counter() - start
        jax.block_until_ready(runs[backend]())
    params = sum(x.size for x in jax.tree.leaves(model.state))
    tokens = sum(c.shape[1] * c.shape[2] * c.shape[3] // 4 for c in inputs[0][0]) * 2 + 2 * 128
    times = {backend: [] for backend in backends}
    for _ in range(args.repeats):
        for backend in backends:  # interleaved, so that every backend sees the same machine load
            start = time.perf_counter()
            jax.block_until_ready(runs[backend]())
            times[backend].append(time.perf_counter() - start)
    print(f"{dit.config.CLASS_NAME} {params / 1e6:.2f} M params, {args.dtype}, {jax.devices()[0].device_kind}")
    print(f"latent {args.height}x{args.width}, unit {args.unit}: {tokens} tokens (CFG batch 2, incl. 128 text each)")
    for backend in backends:
        best = min(times[backend])
        print(f"{backend:10s} compile {compile_s[backend]:.2f} s; forward {best * 1e3:.1f} ms "
              f"(min of {args.repeats}), {tokens / best:,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
