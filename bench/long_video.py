"""Videos past the trained length: per-unit seconds, unit-program memory and compiled programs stay flat.

    python bench/long_video.py                               # tiny miniFLUX snapshot, 128x192, temp 16, 32, 64
    python bench/long_video.py --window 8 --temps 16,64 --steps 4,4,4
    python bench/long_video.py --window 0                    # no window: the history grows with the video

Each unit sees at most `--window` latent frames (default: the variant's max temp, 16 for the 384p variants), so
past that the DiT's token count and its programs stop growing. Each temp runs twice: the first video compiles what
it needs (the count is printed), the second is timed. For every unit it prints the wall seconds, the frames the
unit sees, the padded history capacity of its program, the full-resolution stage's DiT tokens, and the XLA memory
analysis of its program (arguments + temporaries). Text conditioning is random and there is no VAE: this measures
the sampler alone.
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
from pyramid_jax.presets import find_preset  # noqa: E402
from pyramid_jax.sampling import sampler as sampler_module  # noqa: E402
from pyramid_jax.sampling.history import history_clips  # noqa: E402
from pyramid_jax.sampling.noise import KeyNoise  # noqa: E402
from pyramid_jax.sampling.sampler import PyramidSampler, TextConditioning  # noqa: E402

TINY = os.path.join(ROOT, "tests", "fixtures", "snapshots", "miniflux_tiny")
MIB = 2 ** 20


class ProgramMemory:
    """Wraps the sampler's unit function to note each program's arguments; `of(capacity)` is the XLA memory
    analysis (argument + temporary bytes) of the program whose history holds `capacity` frames."""

    def __init__(self):
        self.jitted, self.calls, self.cache = sampler_module.denoise_unit, {}, {}
        self.last_capacity = None

    def __call__(self, dit, history, *args, **kwargs):
        self.last_capacity = len(history)
        self.calls.setdefault(len(history), (dit, history, *args))
        self.kwargs = kwargs
        return self.jitted(dit, history, *args, **kwargs)

    def of(self, capacity: int) -> int:
        if capacity not in self.cache:
            analysis = self.jitted.lower(*self.calls[capacity], **self.kwargs).compile().memory_analysis()
            self.cache[capacity] = analysis.argument_size_in_bytes + analysis.temp_size_in_bytes
        return self.cache[capacity]

    def programs(self) -> int:
        return self.jitted.num_programs()


def top_stage_tokens(capacity: int, h: int, w: int, stages: int) -> int:
    """DiT image tokens at the full-resolution stage (2x2 patches) for a history of `capacity` frames."""
    top = stages - 1
    history = sum((c.stop - c.start) * (h >> (top - c.level)) * (w >> (top - c.level))
                  for c in history_clips(capacity, top))
    return (history + h * w) // 4


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--snapshot", default=TINY)
    p.add_argument("--variant", default="diffusion_transformer_384p")
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--temps", default="16,32,64")
    p.add_argument("--window", type=int, help="latent frames a unit sees (default: the variant's max temp; 0: all)")
    p.add_argument("--steps", default="2,2,2", help="Euler steps per stage (every unit)")
    args = p.parse_args()
    temps, steps = [int(t) for t in args.temps.split(",")], [int(s) for s in args.steps.split(",")]

    dit = pyramid_jax.load_dit(os.path.join(args.snapshot, args.variant), dtype=jnp.float32)
    cfg = dit.config
    preset = find_preset("pyramid_flux" if "Flux" in cfg.CLASS_NAME else "pyramid_mmdit", args.variant)
    window = (args.window or None) if args.window is not None else (preset.max_temp if preset is not None else None)
    h, w, c = args.height // 8, args.width // 8, cfg.latent_channels
    keys = jax.random.split(jax.random.key(0), 3)
    text = TextConditioning(jax.random.normal(keys[0], (2, 16, cfg.joint_attention_dim)), jnp.ones((2, 16), jnp.int32),
                            jax.random.normal(keys[1], (2, cfg.pooled_projection_dim)))
    sampler = PyramidSampler(dit)
    noise = KeyNoise(keys[2], 1, h, w, c, sampler.scheduler.stages, sampler.scheduler.gamma)
    memory = ProgramMemory()
    sampler_module.denoise_unit = memory
    print(f"{cfg.CLASS_NAME} from {args.snapshot} on {jax.devices()[0].platform}: {args.width}x{args.height}, "
          f"steps {steps}, window {window or 'none'} (latent frames)")

    def video(temp: int, record: list | None = None):
        last = [time.perf_counter()]

        def timed(latents):
            jax.block_until_ready(latents)
            now = time.perf_counter()
            if record is not None:
                record.append((now - last[0], memory.last_capacity))
            last[0] = now

        sampler.video(text, noise, temp, steps, steps, 7.0, 5.0, window=window, on_unit=timed)

    for temp in temps:
        before = memory.programs()
        start = time.perf_counter()
        video(temp)  # compiles whatever this length needs
        compiled, first = memory.programs() - before, time.perf_counter() - start
        units = []
        video(temp, units)
        seen = [min(u, window - 1) if window else u for u in range(temp)]
        print(f"\ntemp {temp}: {compiled} unit program(s) compiled (first video {first:.1f} s), "
              f"{memory.programs()} in the process")
        print("unit  seen  capacity  tokens  seconds  program MiB")
        for u, ((seconds, capacity), frames) in enumerate(zip(units, seen)):
            print(f"{u:4d}  {frames:4d}  {capacity:8d}  {top_stage_tokens(capacity, h, w, sampler.scheduler.stages):6d}"
                  f"  {seconds:7.3f}  {memory.of(capacity) / MIB:11.2f}")
        tail = units[-min(8, temp):]
        print(f"temp {temp}: last {len(tail)} units {sum(s for s, _ in tail) / len(tail):.3f} s/unit, "
              f"largest program {max(memory.of(cap) for _, cap in units) / MIB:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
