"""Encode the videos of a jsonl annotation file with the VAE, for `data.source=latents` training.

    python tools/extract_video_latents.py --snapshot pyramid-flow-miniflux --annotation videos.jsonl \
        --output-dir data/latents --resolutions 384x640,640x384 --num-frames 121

Each record's `video` (or `image`, a 1-frame video) is cut to its first --num-frames frames (or those its
`frames` lists), then to 1 + 8k, resized and centre-cropped to the closest --resolutions bucket, mapped to
[-1, 1] and encoded (a posterior sample, as in the reference). The raw latents are saved as `[T, h, w, C]` .npy
(see pyramid_jax/training/data/storage.py) at the record's `latent` path, else `<output_dir>/<line>.npy`, and
the annotation is written again with `latent` filled in (--out-annotation). Existing latent files are kept
unless --overwrite, so an interrupted run can be restarted. An unreadable video stops the run; with
--on-error skip it is logged, counted and left out of the written annotation.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyramid_jax.errors import add_debug_flag, run_cli  # noqa: E402 (after the path setup)


def resolution(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    return int(height), int(width)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snapshot", required=True, help="snapshot folder (its VAE is used)")
    p.add_argument("--annotation", required=True, help="input jsonl with a `video` (or `image`) per line")
    p.add_argument("--output-dir", required=True, help="folder for latents without a `latent` path")
    p.add_argument("--out-annotation", default=None, help="output jsonl (default: <output_dir>/annotation.jsonl)")
    p.add_argument("--resolutions", default="384x640", help="HxW pixel buckets, comma separated (multiples of 8)")
    p.add_argument("--num-frames", type=int, default=121, help="video frames kept at most (121: 16 latent frames)")
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16", help="VAE compute dtype")
    p.add_argument("--save-dtype", choices=("float16", "float32"), default="float16")
    p.add_argument("--tile-size", type=int, default=None, help="spatial tiles of this many pixels (saves memory)")
    p.add_argument("--seed", type=int, default=0, help="posterior sample of line i: fold_in(key(seed), i)")
    p.add_argument("--on-error", choices=("fail", "skip"), default="fail")
    p.add_argument("--overwrite", action="store_true")
    add_debug_flag(p)
    from pyramid_jax.compile_cache import add_compile_cache_flags

    add_compile_cache_flags(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    return run_cli(run, argv)


def run(argv) -> int:
    args = parse_args(argv)
    from pyramid_jax.compile_cache import setup_compile_cache

    setup_compile_cache(args)
    import jax
    import jax.numpy as jnp
    import numpy as np

    import pyramid_jax
    from pyramid_jax.snapshot import Snapshot
    from pyramid_jax.training.data.annotations import read_annotations, sample_path, write_annotations
    from pyramid_jax.training.data.errors import BadFiles, DataError
    from pyramid_jax.training.data.frames import latent_frames, to_unit_range
    from pyramid_jax.training.data.readers import VideoReader, media
    from pyramid_jax.training.data.storage import save_latents

    vae = pyramid_jax.load_vae(Snapshot(args.snapshot).vae, jnp.dtype(args.dtype))
    reader = VideoReader(latent_frames(args.num_frames), [resolution(r) for r in args.resolutions.split(",")])
    bad, key, done = BadFiles(args.on_error), jax.random.key(args.seed), []
    records = read_annotations(args.annotation)
    for index, record in enumerate(records):
        path = sample_path(record, "latent", args.output_dir, index, ".npy")
        if args.overwrite or not os.path.isfile(path):
            try:
                frames = reader.load(record, reader.key(record))
            except DataError as e:
                bad.report(e)
                continue
            posterior = vae.encode(to_unit_range(frames[None]), temporal_chunk=True,
                                   tile_sample_min_size=args.tile_size)
            latents = posterior.sample(jax.random.fold_in(key, index))[0]
            save_latents(path, np.asarray(latents, args.save_dtype))
        done.append({**record, "latent": path})
        print(f"[{index + 1}/{len(records)}] {media(record)} -> {path}")
    out = args.out_annotation or os.path.join(args.output_dir, "annotation.jsonl")
    write_annotations(out, done)
    print(f"wrote {len(done)} of {len(records)} records to {out} ({bad.count} skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
