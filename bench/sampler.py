"""Pyramidal sampler speed: seconds per video, compile seconds, compiled programs, overhead over the DiT calls.

    python bench/sampler.py                                     # tiny miniFLUX snapshot, 192x128, temp 4
    python bench/sampler.py --snapshot tests/fixtures/snapshots/sd3_tiny --temp 8 --width 384 --height 256

Text conditioning is random (no text encoder) and there is no VAE decode: this measures the sampler alone. The
"sum of DiT calls" times every DiT call of the video as a standalone jitted forward of the same shapes; the ratio
of the sampler's time to it is the sampler's overhead (scan, guidance, Euler steps, history assembly and padding to
its bucket, dispatch).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pyramid_jax  # noqa: E402
from pyramid_jax.compile_cache import log_compile_times  # noqa: E402
from pyramid_jax.dit.apply import dit_forward  # noqa: E402
from pyramid_jax.parallel.compiled import PlacedModel  # noqa: E402
from pyramid_jax.sampling.history import history_clips  # noqa: E402
from pyramid_jax.sampling.noise import KeyNoise  # noqa: E402
from pyramid_jax.sampling.sampler import PyramidSampler, TextConditioning, denoise_unit  # noqa: E402

TINY = os.path.join(ROOT, "tests", "fixtures", "snapshots", "miniflux_tiny")
DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


def dit_call_shapes(batch, h, w, c, temp, steps, video_steps):
    """(clip shapes of one DiT call, number of such calls) for every (unit, stage) of a t2v video."""
    top = len(steps) - 1  # the full-resolution stage
    calls = []
    for unit in range(temp):
        for stage, n in enumerate(steps if unit == 0 else video_steps):
            clips = [(2 * batch, clip.stop - clip.start, h >> (top - clip.level), w >> (top - clip.level), c)
                     for clip in history_clips(unit, stage)]
            calls.append((clips + [(2 * batch, 1, h >> (top - stage), w >> (top - stage), c)], n))
    return calls


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--snapshot", default=TINY)
    p.add_argument("--variant", default="diffusion_transformer_384p")
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--temp", type=int, default=4)
    p.add_argument("--steps", default="20,20,20")
    p.add_argument("--video-steps", default="10,10,10")
    p.add_argument("--batch", type=int, default=1, help="prompts per batch (the DiT sees 2x with guidance)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    args = p.parse_args()
    log_compile_times(min_seconds=0.1)  # one line per compiled program, with its seconds
    steps, video_steps = ([int(s) for s in x.split(",")] for x in (args.steps, args.video_steps))
    dtype = DTYPES[args.dtype]

    dit = pyramid_jax.load_dit(os.path.join(args.snapshot, args.variant), dtype=dtype)
    cfg = dit.config
    b, h, w, c = args.batch, args.height // 8, args.width // 8, cfg.latent_channels
    keys = jax.random.split(jax.random.key(0), 3)
    text = TextConditioning(jax.random.normal(keys[0], (2 * b, 128, cfg.joint_attention_dim), dtype),
                            jnp.ones((2 * b, 128), jnp.int32),
                            jax.random.normal(keys[1], (2 * b, cfg.pooled_projection_dim), dtype))
    sampler = PyramidSampler(dit)
    noise = KeyNoise(keys[2], b, h, w, c, sampler.scheduler.stages, sampler.scheduler.gamma, dtype)
    video = lambda: jax.block_until_ready(sampler.video(text, noise, args.temp, steps, video_steps, 7.0, 5.0))

    before, compile_before = PyramidSampler.num_programs(), denoise_unit.compile_seconds()
    start = time.perf_counter()
    video()
    first = time.perf_counter() - start
    programs = PyramidSampler.num_programs() - before
    compile_s = denoise_unit.compile_seconds() - compile_before
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        video()
        runs.append(time.perf_counter() - start)
    per_video = min(runs)

    model = PlacedModel(dit)
    dit_total, num_calls = 0.0, 0
    for shapes, n in dit_call_shapes(b, h, w, c, args.temp, steps, video_steps):
        sample = [[jnp.zeros(s, dtype) for s in shapes]]
        t = jnp.full((2 * b,), 500.0, dtype)
        jax.block_until_ready(dit_forward(model, sample, text.embeds, text.mask, text.pooled, t))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            jax.block_until_ready(dit_forward(model, sample, text.embeds, text.mask, text.pooled, t))
            times.append(time.perf_counter() - start)
        dit_total += n * min(times)
        num_calls += n

    print(f"{cfg.CLASS_NAME} from {args.snapshot} ({args.dtype}) on {jax.devices()[0].platform}: "
          f"{args.width}x{args.height}, temp {args.temp}, steps {steps} / {video_steps}, batch {b} (x2 CFG)")
    print(f"seconds per video (warm): {per_video:.3f}; first video {first:.2f} s, "
          f"so compile ~{first - per_video:.2f} s")
    print(f"compiled unit programs: {programs} in {compile_s:.2f} s (the first unit's and one per history bucket; "
          "reused by later videos)")
    print(f"DiT calls: {num_calls}, sum of standalone DiT call times {dit_total:.3f} s; "
          f"sampler time / DiT time = {per_video / dit_total:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
