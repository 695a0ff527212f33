"""Sampler speed of checkouts side by side: cold first video (compiles included) and warm video seconds.

    git worktree add /tmp/main-base 8cf5de3
    python bench/cpu_speed.py --base /tmp/main-base                       # the issue's small config, 1 round
    python bench/cpu_speed.py --base /tmp/main-base --height 192 --width 320 --rounds 2

Every measurement runs in a fresh process (so "cold" pays every compile; the persistent compilation cache is off)
that imports `pyramid_jax` from the checkout being measured; checkouts alternate within each round, so both see
the same machine load. The DiT is a randomly initialised miniFLUX (default D=256, 2 double + 4 single blocks),
text conditioning is random (no text encoder; `--text-tokens` real positions of 128 in the negative and the
positive row) and there is no VAE decode: this measures the sampler alone.
A line per measurement (wall seconds, and the process's CPU seconds over all threads, which other jobs on a shared
box disturb less), then the best of each checkout and the ratios base / this.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(args) -> dict:
    """One cold video then `args.warm_runs` warm ones, with `pyramid_jax` imported from `args.worker`."""
    sys.path.insert(0, args.worker)
    import jax
    import jax.numpy as jnp
    from flax import nnx

    jax.config.update("jax_enable_compilation_cache", False)
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: compiles.append(secs) if event.endswith("backend_compile_duration") else None)

    import pyramid_jax
    from pyramid_jax.dit.config import FluxConfig
    from pyramid_jax.dit.pyramid_flux import PyramidFluxTransformer
    from pyramid_jax.sampling.noise import KeyNoise
    from pyramid_jax.sampling.sampler import PyramidSampler, TextConditioning

    config = FluxConfig(num_layers=args.double, num_single_layers=args.single, num_attention_heads=args.width_dim // 64)
    if args.attention_backend != "auto":  # a checkout from before the backends has no such field
        config = config.replace(attention_backend=args.attention_backend)
    dit = PyramidFluxTransformer(config, rngs=nnx.Rngs(0))
    keys = jax.random.split(jax.random.key(0), 3)
    tokens = jnp.asarray([[int(n)] for n in args.text_tokens.split(",")])
    text = TextConditioning(jax.random.normal(keys[0], (2, 128, config.joint_attention_dim)),
                            (jnp.arange(128) < tokens).astype(jnp.int32),
                            jax.random.normal(keys[1], (2, config.pooled_projection_dim)))
    sampler = PyramidSampler(dit) if args.pad_history else PyramidSampler(dit, pad_history=False)
    h, w = args.height // 8, args.width // 8
    noise = KeyNoise(keys[2], 1, h, w, config.latent_channels, sampler.scheduler.stages, sampler.scheduler.gamma)
    steps, video_steps = ([int(s) for s in x.split(",")] for x in (args.steps, args.video_steps))
    video = lambda: jax.block_until_ready(sampler.video(text, noise, args.temp, steps, video_steps, 7.0, 5.0))

    jax.block_until_ready(text)
    compiles.clear()
    before = PyramidSampler.num_programs()
    start, cpu = time.perf_counter(), time.process_time()
    video()
    cold, cold_cpu = time.perf_counter() - start, time.process_time() - cpu
    result = dict(package=os.path.dirname(pyramid_jax.__file__), cold_s=cold, cold_cpu_s=cold_cpu,
                  compile_s=sum(compiles),
                  compiles=len(compiles),
                  unit_programs=PyramidSampler.num_programs() - before)
    warm = []
    for _ in range(args.warm_runs):
        start, cpu = time.perf_counter(), time.process_time()
        video()
        warm.append((time.perf_counter() - start, time.process_time() - cpu))
    result["warm_s"], result["warm_cpu_s"] = min(warm)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", help="a checkout to compare against (e.g. of 8cf5de3)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--height", type=int, default=384)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--temp", type=int, default=4)
    p.add_argument("--steps", default="20,20,20")
    p.add_argument("--video-steps", default="10,10,10")
    p.add_argument("--width-dim", type=int, default=256, help="DiT width D (heads of 64)")
    p.add_argument("--double", type=int, default=2, help="double-stream blocks")
    p.add_argument("--single", type=int, default=4, help="single-stream blocks")
    p.add_argument("--warm-runs", type=int, default=2)
    p.add_argument("--text-tokens", default="20,128", help="real text positions (of 128) in the negative and the "
                   "positive row; the sampler cuts the padding after the longest")
    p.add_argument("--attention-backend", default="auto", help="this checkout's DiT attention backend")
    p.add_argument("--pad-history", type=int, default=1, help="0: this checkout's sampler without history buckets")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    checkouts = {"this": ROOT} | ({"base": os.path.abspath(args.base)} if args.base else {})
    for name, path in checkouts.items():
        if not os.path.isdir(os.path.join(path, "pyramid_jax")):
            raise SystemExit(f"--base {path}: no pyramid_jax package there (make one with git worktree add)")
    forwarded = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                 if k not in ("base", "rounds", "worker")]
    base_forwarded = [a for a in forwarded if not a.startswith(("--attention-backend", "--pad-history"))]
    print(f"miniFLUX D={args.width_dim}, {args.double}+{args.single} blocks, {args.width}x{args.height}, temp "
          f"{args.temp}, steps {args.steps} / {args.video_steps}, CFG; {os.cpu_count()} CPUs")
    best: dict[str, dict] = {}
    for r in range(args.rounds):
        for name in (list(checkouts) if r % 2 == 0 else list(checkouts)[::-1]):
            env = dict(os.environ, JAX_ENABLE_COMPILATION_CACHE="false", PYTHONPATH=checkouts[name])
            out = subprocess.run([sys.executable, __file__, f"--worker={checkouts[name]}",
                                  *(forwarded if name == "this" else base_forwarded)], env=env,
                                 cwd=checkouts[name], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{name} ({checkouts[name]}) failed:\n{out.stderr[-3000:]}")
            m = json.loads(out.stdout.strip().splitlines()[-1])
            if m.pop("package") != os.path.join(checkouts[name], "pyramid_jax"):
                raise SystemExit(f"{name}: imported pyramid_jax from elsewhere than {checkouts[name]}")
            print(f"round {r} {name:4s}: cold first video {m['cold_s']:.1f} s (CPU {m['cold_cpu_s']:.1f} s; "
                  f"{m['compiles']} XLA compiles, {m['compile_s']:.1f} s; {m['unit_programs']} unit programs), "
                  f"warm video {m['warm_s']:.1f} s (CPU {m['warm_cpu_s']:.1f} s)")
            if name in best:
                m = {k: min(v, best[name][k]) for k, v in m.items()}
            best[name] = m
    if "base" in best:
        print(f"best of {args.rounds}: warm {best['base']['warm_s']:.1f} -> {best['this']['warm_s']:.1f} s "
              f"(x{best['base']['warm_s'] / best['this']['warm_s']:.2f}), cold {best['base']['cold_s']:.1f} -> "
              f"{best['this']['cold_s']:.1f} s (x{best['base']['cold_s'] / best['this']['cold_s']:.2f}); CPU s: warm "
              f"x{best['base']['warm_cpu_s'] / best['this']['warm_cpu_s']:.2f}, cold "
              f"x{best['base']['cold_cpu_s'] / best['this']['cold_cpu_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
