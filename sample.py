"""Run pyramid-jax on the embedded default.

For now (until the pyramidal sampler and the embedded demo model land) this converts the tiny reference
snapshot shipped in tests/fixtures to pyramid-jax's format and runs one jitted miniFLUX DiT forward on it, in the
shape of a real sampler call: unit 2 of a video at the full-resolution stage, with a CFG batch of two and history
clips at 1/4, 1/2 and full resolution.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
from flax import nnx

import pyramid_jax
from pyramid_jax.convert.snapshot import convert_snapshot
from pyramid_jax.dit.apply import dit_apply_fn

HERE = os.path.dirname(os.path.abspath(__file__))
TINY_SNAPSHOT = os.path.join(HERE, "tests", "fixtures", "snapshots", "miniflux_tiny")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", default=TINY_SNAPSHOT, help="torch snapshot folder (released layout)")
    parser.add_argument("--out", default=os.path.join(HERE, "out", "miniflux_tiny_jax"), help="converted folder")
    parser.add_argument("--height", type=int, default=16, help="latent height of the current clip")
    parser.add_argument("--width", type=int, default=24, help="latent width of the current clip")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    print(f"converting {args.snapshot} -> {args.out}")
    convert_snapshot(args.snapshot, args.out, components=["dit"], overwrite=True)
    dit = pyramid_jax.load_dit(os.path.join(args.out, "diffusion_transformer_384p"))
    cfg = dit.config
    print(f"loaded {cfg.CLASS_NAME}: {cfg.num_layers} double + {cfg.num_single_layers} single blocks, "
          f"width {cfg.inner_dim}, {sum(x.size for x in jax.tree.leaves(nnx.state(dit))):,} parameters")

    keys = jax.random.split(jax.random.key(args.seed), 8)
    c, h, w, text_len = cfg.latent_channels, args.height, args.width, 128
    batch = 2  # [negative, positive] prompt rows, as with classifier-free guidance
    history = [jax.random.normal(keys[i], (batch, 1, h // s, w // s, c)) for i, s in enumerate((4, 2, 1))]
    current = jax.random.normal(keys[3], (batch, 1, h, w, c))
    text = jax.random.normal(keys[4], (batch, text_len, cfg.joint_attention_dim))
    text_mask = (jnp.arange(text_len)[None] < jnp.array([[12], [20]])).astype(jnp.int32)
    pooled = jax.random.normal(keys[5], (batch, cfg.pooled_projection_dim))
    timestep = jnp.full((batch,), 386.0)

    graphdef, state = nnx.split(dit)
    apply = dit_apply_fn(graphdef)
    inputs = ([history + [current]], text, text_mask, pooled, timestep)
    start = time.perf_counter()
    velocity = jax.block_until_ready(apply(state, *inputs))[0]
    compile_and_run = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(apply(state, *inputs))
    run = time.perf_counter() - start
    print(f"DiT forward: velocity {tuple(velocity.shape)} [B, T, H, W, C], mean |v| {float(jnp.abs(velocity).mean()):.4f}")
    print(f"first call (compile + run) {compile_and_run:.2f} s, second call {run * 1e3:.1f} ms, "
          f"{apply._cache_size()} compiled program(s) on {jax.devices()[0].platform}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
