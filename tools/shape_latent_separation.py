"""How far apart a snapshot's VAE codes the moving-shapes demo's shapes, as the DiT sees its latents.

    python tools/shape_latent_separation.py                          # the embedded demo's VAE, 24 clips
    python tools/shape_latent_separation.py --snapshot out/snap --clips 48

For each of `--clips` rendered circle clips (random colour, size, place and direction, as in training), four
variants change one thing: the shape becomes a square or a triangle, the colour becomes the next palette colour, or
the clip moves 2 px to the right. Each clip is coded to its posterior mean and normalized as its DiT family does;
a change is the norm of the latents' difference over the norm of the circle clip's foreground latents (its latents
minus their per-frame, per-channel median, the background's code). The table gives the mean, least and most change,
and the mean of the same measure on the rendered pixels: what the VAE keeps of each change. A DiT rarely draws a
change smaller than its own error: the demo's squares read as circles where colours and triangles read right.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyramid_jax.errors import ArgumentError, add_debug_flag, run_cli  # noqa: E402 (after the path setup)

def main(argv=None) -> int:
    return run_cli(measure, argv)


def variants(circle) -> dict:
    """`circle`'s clip with one thing changed, by the name of the change (the table's rows, in order)."""
    from pyramid_jax.demo.shapes import COLOURS

    colours = list(COLOURS)
    return {"square": dataclasses.replace(circle, shape="square"),
            "triangle": dataclasses.replace(circle, shape="triangle"),
            "colour": dataclasses.replace(circle, colour=colours[(colours.index(circle.colour) + 1) % len(colours)]),
            "2 px right": dataclasses.replace(circle, x=circle.x + 2.0)}


def relative_changes(clips: np.ndarray) -> np.ndarray:
    """Of `[1 + n, T, h, w, c]` latents or pixels (a circle clip, then its n variants): each variant's change over
    the norm of the circle's foreground (its values minus their per-frame, per-channel median)."""
    circle = clips[0]
    foreground = circle - np.median(circle, axis=(1, 2), keepdims=True)
    return np.linalg.norm((clips[1:] - circle).reshape(len(clips) - 1, -1), axis=1) / np.linalg.norm(foreground)


def measure(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snapshot", default=os.path.join(ROOT, "checkpoints", "shapes_demo"), help="snapshot folder")
    p.add_argument("--family", default="pyramid_flux", help="the DiT family whose latent normalization applies")
    p.add_argument("--clips", type=int, default=24, help="circle clips, each with its four variants")
    p.add_argument("--seed", type=int, default=0, help="seed of the clips' colours, sizes, places and directions")
    add_debug_flag(p)
    args = p.parse_args(argv)
    if args.clips < 1:
        raise ArgumentError(f"--clips {args.clips}: give at least 1")

    import jax.numpy as jnp

    from pyramid_jax.demo.models import FRAMES, SIZE
    from pyramid_jax.demo.shapes import random_clip, render
    from pyramid_jax.dit.families import get_family
    from pyramid_jax.snapshot import Snapshot
    from pyramid_jax.training.data.frames import to_unit_range
    from pyramid_jax.vae.load import load_vae

    scaling = get_family(args.family).latents
    vae = load_vae(Snapshot(args.snapshot).vae, jnp.float32)
    rng = np.random.default_rng(args.seed)
    changes, pixel_changes = [], []
    for _ in range(args.clips):
        circle = random_clip(rng, FRAMES, SIZE, shape="circle")
        clips = np.stack([render(clip, FRAMES, SIZE) for clip in (circle, *variants(circle).values())])
        latents = scaling.normalize(vae.encode(jnp.asarray(to_unit_range(clips))).mode())
        changes.append(relative_changes(np.asarray(latents, np.float64)))
        pixel_changes.append(relative_changes(clips.astype(np.float64)))
    changes, pixels = np.stack(changes), np.mean(pixel_changes, axis=0)  # [clips, changes], [changes]
    print(f"{args.snapshot}: change from a circle clip, over its foreground ({args.clips} clips)\n"
          "| change | latents: mean | least | most | pixels: mean |\n|---|---|---|---|---|")
    for name, column, pixel in zip(variants(circle), changes.T, pixels):
        print(f"| {name} | {column.mean():.3f} | {column.min():.3f} | {column.max():.3f} | {pixel:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
